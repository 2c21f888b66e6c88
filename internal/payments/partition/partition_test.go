package partition

import (
	"fmt"
	"testing"
)

func TestOfSpreadsKeysAndMovesFewWhenNGrows(t *testing.T) {
	const keys = 20000
	counts := make([]int, 4)
	moved := 0
	for i := range keys {
		k := fmt.Sprintf("acct-%d", i)
		p4 := Of(k, 4)
		if p4 < 0 || p4 >= 4 {
			t.Fatalf("Of(%q, 4) = %d", k, p4)
		}
		if Of(k, 4) != p4 {
			t.Fatalf("Of is not deterministic for %q", k)
		}
		counts[p4]++
		if Of(k, 5) != p4 {
			moved++
		}
	}
	for k, c := range counts {
		if c < keys/4*8/10 || c > keys/4*12/10 {
			t.Errorf("partition %d holds %d of %d keys: not spread evenly (%v)", k, c, keys, counts)
		}
	}
	// Jump hash moves about 1/5 of the keys from 4 to 5 partitions.
	if moved < keys/5*8/10 || moved > keys/5*12/10 {
		t.Errorf("4 → 5 partitions moved %d of %d keys; want about %d", moved, keys, keys/5)
	}
	if Of("x", 1) != 0 || Of("x", 0) != 0 {
		t.Error("one partition must be partition 0")
	}
}

func TestLogNames(t *testing.T) {
	for k := range 12 {
		got, ok := ParseLog(Log(k))
		if !ok || got != k {
			t.Errorf("ParseLog(%q) = %d, %v", Log(k), got, ok)
		}
	}
	for _, bad := range []string{"payments", "payments-p", "payments-p01", "payments-px", "ordering-p1", "payments-p64", "payments-p-1"} {
		if _, ok := ParseLog(bad); ok {
			t.Errorf("ParseLog(%q) accepted", bad)
		}
	}
	if Check(0) == nil || Check(65) == nil || Check(1) != nil || Check(64) != nil {
		t.Error("Check bounds")
	}
}

func TestKeyOfMatchesTheStreams(t *testing.T) {
	for stream, key := range map[string]string{"account-a1": "a1", "saga-transfer-t9": "t9", "saga-checkout-o1": "saga-checkout-o1"} {
		if got := KeyOf(stream); got != key {
			t.Errorf("KeyOf(%q) = %q, want %q", stream, got, key)
		}
	}
}
