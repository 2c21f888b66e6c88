package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 3_600_000_000, math.MaxInt64} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d: out of order or range (previous %d, buckets %d)", v, i, prev, histBuckets)
		}
		if lo := histLow(i); lo > v || (i+1 < histBuckets && histLow(i+1) <= v) {
			t.Fatalf("%d is in bucket %d, which starts at %d (next at %d)", v, i, lo, histLow(i+1))
		}
		prev = i
	}
}

// TestHistogramQuantiles: quantiles within 1.6 % of those of the sorted
// latencies, in a histogram whose size does not depend on how many it
// counted.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var all []time.Duration
	for range 200_000 {
		d := time.Duration(math.Exp(r.NormFloat64()+5) * float64(time.Millisecond) / 100)
		h.add(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, p := range []float64{0.5, 0.9, 0.99, 0.999} {
		want, got := pct(all, p), h.quantile(p)
		if math.Abs(got-want) > want/64+0.001 {
			t.Errorf("p%v = %.3f ms, want %.3f ms (within 1/64)", p*100, got, want)
		}
	}
	h.reset()
	if h.quantile(0.99) != 0 || h.n != 0 {
		t.Fatal("reset left counts")
	}
}
