package idmap

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"testing"

	"github.com/google/uuid"
)

type rec struct {
	N     int64
	State uint8
}

func keys(n int) []string {
	ks := make([]string, 0, n)
	for i := range n {
		id := uuid.New().String()
		switch i % 5 {
		case 0:
			ks = append(ks, id)
		case 1:
			ks = append(ks, "order:"+id)
		case 2:
			ks = append(ks, "refund:"+id)
		case 3:
			ks = append(ks, fmt.Sprintf("key-%d", i)) // not a UUID
		case 4:
			ks = append(ks, "order:"+id[:35]+"G") // not hex
		}
	}
	return append(ks, "ORDER:"+uuid.NewString(), "order:"+toUpper(uuid.NewString()), "", "x")
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// TestMapIsAMap: a Map behaves as the map[string]V it replaces, for every
// kind of key, through sets, deletes, copies and JSON.
func TestMapIsAMap(t *testing.T) {
	var m Map[rec]
	want := map[string]rec{}
	ks := keys(500)
	for i, k := range ks {
		m.Set(k, rec{N: int64(i), State: uint8(i)})
		want[k] = rec{N: int64(i), State: uint8(i)}
	}
	for i, k := range ks[:100] {
		if i%3 == 0 {
			m.Delete(k)
			delete(want, k)
		}
	}
	c := m // a copy shares the entries
	c.Set(ks[1], rec{N: -1})
	want[ks[1]] = rec{N: -1}
	check := func(name string, m Map[rec]) {
		t.Helper()
		if m.Len() != len(want) {
			t.Fatalf("%s: %d entries, want %d", name, m.Len(), len(want))
		}
		for _, k := range ks {
			v, ok := m.Get(k)
			w, wok := want[k]
			if ok != wok || v != w {
				t.Fatalf("%s: Get(%q) = %v %v, want %v %v", name, k, v, ok, w, wok)
			}
		}
		got := maps.Collect(m.All())
		if !maps.Equal(got, want) {
			t.Fatalf("%s: All differs from the map", name)
		}
	}
	check("m", m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(want)
	if string(b) != string(wb) {
		t.Fatalf("JSON differs from the map's:\n%s\n%s", b, wb)
	}
	var back Map[rec]
	if err := json.Unmarshal(wb, &back); err != nil {
		t.Fatal(err)
	}
	check("decoded", back)
	m.DeleteFunc(func(r rec) bool { return r.N%2 == 0 })
	maps.DeleteFunc(want, func(_ string, r rec) bool { return r.N%2 == 0 })
	check("after DeleteFunc", m)
	if err := json.Unmarshal([]byte(`{"a":1}`), &back); err == nil {
		t.Error("a bad value decoded")
	}
	var zero Map[rec]
	if _, ok := zero.Get("x"); ok || zero.Len() != 0 || !zero.IsZero() {
		t.Error("the zero Map is not empty")
	}
	zero.Delete("x")
	zero.DeleteFunc(func(rec) bool { return true })
	if b, _ := json.Marshal(zero); string(b) != "{}" {
		t.Errorf("zero Map's JSON: %s", b)
	}
}

// TestManyPrefixes: prefixes past the numbered ones still work, as
// strings.
func TestManyPrefixes(t *testing.T) {
	var m Map[int]
	id := uuid.NewString()
	for i := range 3 * maxPrefixes {
		m.Set(fmt.Sprintf("p%d:", i)+id, i)
	}
	m.Set(string(make([]byte, maxPrefixLen+1))+id, -1)
	for i := range 3 * maxPrefixes {
		if v, ok := m.Get(fmt.Sprintf("p%d:", i) + id); !ok || v != i {
			t.Fatalf("prefix %d: %d %v", i, v, ok)
		}
	}
	if m.Len() != 3*maxPrefixes+1 || len(m.t.ids) != maxPrefixes {
		t.Fatalf("%d entries, %d by UUID", m.Len(), len(m.t.ids))
	}
}

// sizes are the benchmarks' entry counts (-short: the small one only).
func sizes() []int {
	if testing.Short() {
		return []int{10_000}
	}
	return []int{10_000, 1_000_000}
}

// BenchmarkGet looks keys up in a Map and in a map[string] of n entries.
func BenchmarkGet(b *testing.B) {
	for _, n := range sizes() {
		ks := make([]string, n)
		var m Map[rec]
		plain := make(map[string]rec, n)
		for i := range ks {
			ks[i] = "order:" + uuid.NewString()
			m.Set(ks[i], rec{N: int64(i)})
			plain[ks[i]] = rec{N: int64(i)}
		}
		b.Run(fmt.Sprintf("idmap/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, ok := m.Get(ks[i%n]); !ok {
					b.Fatal("missing")
				}
			}
		})
		b.Run(fmt.Sprintf("map/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, ok := plain[ks[i%n]]; !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

// BenchmarkCollect times a garbage collection with a Map, or a
// map[string], of n entries live: what each costs every collection.
func BenchmarkCollect(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("idmap/%d", n), func(b *testing.B) {
			var m Map[rec]
			for i := range n {
				m.Set("order:"+uuid.NewString(), rec{N: int64(i)})
			}
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(m)
		})
		b.Run(fmt.Sprintf("map/%d", n), func(b *testing.B) {
			plain := make(map[string]rec)
			for i := range n {
				plain["order:"+uuid.NewString()] = rec{N: int64(i)}
			}
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(plain)
		})
	}
}
