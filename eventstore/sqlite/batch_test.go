package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
)

// Appends that share a group commit go in with multi-row INSERTs; one
// carrying an event ID already stored fails the statement, and the batch
// is written again an append at a time. Whatever the mix, every fresh
// append lands whole, every exact repeat answers its first result, every
// other reuse of an ID is refused, and positions stay gapless.
func TestMixedBatchesWithRepeatsAndDuplicates(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mk := func(n int) []eventstore.EventData {
		evs := make([]eventstore.EventData, n)
		for i := range evs {
			evs[i] = eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: "N", Data: json.RawMessage(fmt.Sprint(i))}
		}
		return evs
	}
	// Appends already stored, to repeat or to collide with.
	const stored = 20
	old := make([][]eventstore.EventData, stored)
	oldRes := make([]eventstore.AppendResult, stored)
	for i := range old {
		old[i] = mk(1 + i%3)
		var err error
		if oldRes[i], err = s.Append(ctx, fmt.Sprintf("old-%d", i), eventstore.NoStream, old[i]...); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make(chan error, 256)
		for w := range 64 {
			kind := w % 4
			wg.Go(func() {
				switch kind {
				case 0, 1, 2: // fresh: 1 to 3 events in a stream of its own
					stream := fmt.Sprintf("s-%d-%d", round, w)
					evs := mk(1 + kind)
					res, err := s.Append(ctx, stream, eventstore.NoStream, evs...)
					if err != nil {
						errs <- fmt.Errorf("fresh %s: %w", stream, err)
						return
					}
					recs, err := s.ReadStream(ctx, stream, eventstore.StreamRead{})
					if err != nil || len(recs) != len(evs) || recs[0].Position != res.FirstPosition || recs[len(recs)-1].ID != evs[len(evs)-1].ID {
						errs <- fmt.Errorf("fresh %s: read %d records (%v), result %+v", stream, len(recs), err, res)
					}
				case 3:
					i := (w/4 + round) % stored
					stream := fmt.Sprintf("old-%d", i)
					if w%8 == 3 { // an exact repeat: the first result
						res, err := s.Append(ctx, stream, eventstore.NoStream, old[i]...)
						if err != nil || res != oldRes[i] {
							errs <- fmt.Errorf("repeat of %s: %+v, %v; want %+v", stream, res, err, oldRes[i])
						}
						return
					}
					// An old ID in a new stream: refused.
					_, err := s.Append(ctx, fmt.Sprintf("dup-%d-%d", round, w), eventstore.Any, append(mk(1), old[i][0])...)
					if !errors.Is(err, eventstore.ErrDuplicateEvent) {
						errs <- fmt.Errorf("duplicate of %s: err = %v, want ErrDuplicateEvent", stream, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	// Gapless: the log holds exactly the events of the accepted appends.
	want := 0
	for i := range old {
		want += len(old[i])
	}
	for w := range 64 {
		if w%4 != 3 {
			want += 5 * (1 + w%4)
		}
	}
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s.ReadAll(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if int(head) != want || len(recs) != want {
		t.Fatalf("head %d, %d records; want %d", head, len(recs), want)
	}
	for i, r := range recs {
		if r.Position != uint64(i+1) {
			t.Fatalf("record %d at position %d", i, r.Position)
		}
	}
}
