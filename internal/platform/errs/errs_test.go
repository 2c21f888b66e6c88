package errs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/agora-commerce/agora/internal/platform/errs"
)

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&errs.Error{Code: errs.NotFound}, false},
		{fmt.Errorf("wrapped: %w", &errs.Error{Code: errs.Unprocessable}), false},
		{&errs.Error{Code: errs.Unavailable}, true},
		{fmt.Errorf("wrapped: %w", &errs.Error{Code: errs.Timeout}), true},
		{errors.New("connection reset"), true}, // no code: Internal
		{context.DeadlineExceeded, true},
	} {
		if got := errs.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
