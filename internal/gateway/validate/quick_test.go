package validate

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestQuickAcceptAgreesWithKinOpenAPI: whatever the quick test of a plain
// string parameter accepts, kin-openapi accepts too (what it refuses goes
// to kin-openapi anyway).
func TestQuickAcceptAgreesWithKinOpenAPI(t *testing.T) {
	v, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	samples := []string{"", "a", "A", "0", "-", "_", ".", "..", "a b", "a/b", "a%2Fb", "<script>", "é", "日本", "\x00", "a\nb",
		"0198c1d2-aaaa-7bbb-8ccc-123456789abc", "acct-0198c1d2-aaaa-7bbb-8ccc-123456789abc", "checkout-o1", "trace:abc/def=",
		"eyJhbGciOiJFZERTQSJ9.e30.sig", "50", "-1", "1e3", "Pending", "USD", "usd"}
	for _, n := range []int{1, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257} {
		samples = append(samples, strings.Repeat("a", n), strings.Repeat("0", n))
	}
	checked := 0
	for key, op := range v.ops {
		for p, pl := range op.plain {
			if pl.accept == nil {
				continue
			}
			checked++
			for _, s := range samples {
				if pl.accept(s) {
					if err := pl.schema.VisitJSON(s, openapi3.MultiErrors()); err != nil {
						t.Errorf("%s %s %q: quick test accepts %q, kin-openapi refuses: %v", key, p.In, p.Name, s, err)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no parameter has a quick test")
	}
}
