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
	for _, n := range []int{1, 3, 4, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257} {
		samples = append(samples, strings.Repeat("a", n), strings.Repeat("0", n), strings.Repeat("A", n))
	}
	for b := 0; b < 128; b++ { // every ASCII byte, alone and inside
		samples = append(samples, string(rune(b)), "a"+string(rune(b))+"b", "AB"+string(rune(b)))
	}
	checked := 0
	for key, op := range v.ops {
		for p, pl := range op.plain {
			if pl.accept == nil {
				continue
			}
			checked++
			for _, s := range samples {
				err := pl.schema.VisitJSON(s, openapi3.MultiErrors())
				switch {
				case pl.accept(s) && err != nil:
					t.Errorf("%s %s %q: quick test accepts %q, kin-openapi refuses: %v", key, p.In, p.Name, s, err)
				case !pl.accept(s) && err == nil && isASCII(s):
					// Harmless (kin-openapi decides), but the two should agree.
					t.Errorf("%s %s %q: quick test refuses %q, kin-openapi accepts", key, p.In, p.Name, s)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no parameter has a quick test")
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
