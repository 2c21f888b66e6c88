package load

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// The scenarios, in the order reports list them.
const (
	// Browse lists products, pages through them and searches.
	Browse = "browse"
	// Product views one product and its availability.
	Product = "product"
	// Order places an order with an Idempotency-Key and follows it to
	// Confirmed or Cancelled.
	Order = "order"
	// Check reads the customer's own orders and balance.
	Check = "check"
	// Transfer moves money between the customer's two accounts and
	// follows the transfer to Completed or Failed.
	Transfer = "transfer"
)

// Scenarios names every scenario, in report order.
var Scenarios = []string{Browse, Product, Order, Check, Transfer}

// DefaultMix is a shop's traffic: mostly looking, some buying.
const DefaultMix = "browse=40,product=25,order=15,check=10,transfer=10"

// Mix is the relative weight of each scenario (index as in Scenarios);
// a virtual user picks its next scenario with these odds.
type Mix [5]int

// ParseMix reads "name=weight,…" (e.g. DefaultMix). Weights are whole
// numbers, zero or more; scenarios not named get zero. Unknown names,
// repeated names, negative or non-numeric weights, and a mix whose
// weights are all zero are errors.
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return Mix{}, fmt.Errorf("mix: %q: want name=weight (scenarios: %s)", part, strings.Join(Scenarios, ", "))
		}
		i := index(name)
		if i < 0 {
			return Mix{}, fmt.Errorf("mix: unknown scenario %q (scenarios: %s)", name, strings.Join(Scenarios, ", "))
		}
		if seen[name] {
			return Mix{}, fmt.Errorf("mix: %q named twice", name)
		}
		seen[name] = true
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil {
			return Mix{}, fmt.Errorf("mix: %s: weight %q is not a whole number", name, w)
		}
		if n < 0 {
			return Mix{}, fmt.Errorf("mix: %s: weight %d is negative", name, n)
		}
		if n > 1_000_000 {
			return Mix{}, fmt.Errorf("mix: %s: weight %d is over 1000000", name, n)
		}
		m[i] = n
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("mix: %q: no scenario has a positive weight", s)
	}
	return m, nil
}

func index(name string) int {
	for i, s := range Scenarios {
		if s == name {
			return i
		}
	}
	return -1
}

func (m Mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// Weight returns the weight of the named scenario (0 if unknown).
func (m Mix) Weight(name string) int {
	if i := index(name); i >= 0 {
		return m[i]
	}
	return 0
}

// String formats m as ParseMix reads it.
func (m Mix) String() string {
	parts := make([]string, 0, len(m))
	for i, w := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", Scenarios[i], w))
	}
	return strings.Join(parts, ",")
}

// Pick returns a scenario drawn with m's odds. m must have a positive
// weight (ParseMix makes sure).
func (m Mix) Pick(r *rand.Rand) string {
	n := r.IntN(m.total())
	for i, w := range m {
		if n < w {
			return Scenarios[i]
		}
		n -= w
	}
	panic("load: Pick on an empty mix")
}
