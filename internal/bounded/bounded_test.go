package bounded_test

import (
	"fmt"
	"testing"

	"github.com/agora-commerce/agora/internal/bounded"
)

func TestMapStaysWithinItsBound(t *testing.T) {
	m := bounded.New[string, int](1000)
	if m.Cap() != 1000 {
		t.Fatalf("Cap = %d, want 1000", m.Cap())
	}
	for i := range 100_000 {
		m.Put(fmt.Sprint(i), i)
		if m.Len() > m.Cap() {
			t.Fatalf("after %d puts Len = %d > Cap %d", i+1, m.Len(), m.Cap())
		}
	}
	// The newest half is always held; the oldest are gone.
	for i := 100_000 - 500; i < 100_000; i++ {
		if v, ok := m.Get(fmt.Sprint(i)); !ok || v != i {
			t.Fatalf("Get(%d) = %d, %v; want it kept", i, v, ok)
		}
	}
	if _, ok := m.Get("0"); ok {
		t.Fatal("the first key is still held after 100 times the bound")
	}
}

func TestMapKeepsWhatIsUsed(t *testing.T) {
	m := bounded.New[int, int](100)
	m.Put(-1, 42)
	for i := range 10_000 {
		m.Put(i, i)
		if i%40 == 0 { // read within every half of the bound
			if v, ok := m.Get(-1); !ok || v != 42 {
				t.Fatalf("a key read every 40 puts was forgotten after %d puts", i)
			}
		}
	}
}

func TestMapPutDeleteClear(t *testing.T) {
	m := bounded.New[string, int](4)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("c", 3) // rotates: a, b are the previous generation
	if v, ok := m.Peek("a"); !ok || v != 1 {
		t.Fatalf("Peek(a) = %d, %v", v, ok)
	}
	m.Put("a", 10) // an update moves it to the current generation
	if v, _ := m.Get("a"); v != 10 {
		t.Fatalf("Get(a) = %d, want 10", v)
	}
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3 (an update adds nothing)", m.Len())
	}
	m.Delete("b")
	if _, ok := m.Get("b"); ok {
		t.Fatal("b survived Delete")
	}
	m.Clear()
	if m.Len() != 0 {
		t.Fatalf("Len after Clear = %d", m.Len())
	}
}

// BenchmarkMapGet looks up a key among entries held: the cost must not
// grow with the bound.
func BenchmarkMapGet(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%s", size(n)), func(b *testing.B) {
			m := bounded.New[string, int64](2 * n)
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("order-%08d", i)
				m.Put(keys[i], int64(i))
			}
			b.ResetTimer()
			for i := range b.N {
				if _, ok := m.Get(keys[(i*7919)%n]); !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

func size(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}
