package bench

import (
	"math/bits"
	"time"
)

// histogram counts latencies in a fixed number of buckets, so that a
// soak of any length keeps the same memory (16 KiB): the checkout's
// latencies of a run and of each tenth. Buckets are log-linear in
// microseconds — exact below 128 µs, then 64 per power of two — so a
// quantile is within 1/64 (1.6 %) of the true value.
type histogram struct {
	counts [histBuckets]uint64
	n      int
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // exact values below this (µs)
	histBuckets = histSub + (64-histSubBits)*histSub/2
)

// histIndex is v's bucket; histLow is the smallest value of bucket i.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits // ≥ 1: v>>e is in [histSub/2, histSub)
	return histSub + (e-1)*histSub/2 + int(v>>e) - histSub/2
}

func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i-histSub)/(histSub/2) + 1
	m := uint64((i-histSub)%(histSub/2) + histSub/2)
	return m << e
}

// add counts d.
func (h *histogram) add(d time.Duration) {
	h.counts[histIndex(uint64(max(d.Microseconds(), 0)))]++
	h.n++
}

// reset forgets every count.
func (h *histogram) reset() { *h = histogram{} }

// quantile is the p quantile (0..1), in ms: the middle of the bucket that
// holds the value of rank ⌊n·p⌋ (as pct picks it from a sorted slice).
func (h *histogram) quantile(p float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := min(int(float64(h.n)*p), h.n-1) // 0-based, as pct
	seen := 0
	for i, c := range h.counts {
		seen += int(c)
		if seen > rank {
			lo := histLow(i)
			hi := lo
			if i+1 < histBuckets {
				hi = histLow(i+1) - 1
			}
			return float64(lo+hi) / 2 / 1000
		}
	}
	return 0
}
