// Package idmap is a map from string keys to values, for states that
// remember an entry for every ID they have seen: an account's transfer
// legs by transfer key, a product's holds by order ID. Such a state lives
// in memory for as long as its aggregate is cached and grows with
// history, so how it is held matters: a map[string]T of a few hundred
// thousand entries costs about 130 bytes an entry, and every one of its
// pointers is scanned by every garbage collection, which made the cost of
// an order grow with the orders before it.
//
// A Map keeps a key that is a short prefix followed by a canonical UUID
// ("order:0190c3e4-…", or a bare UUID) as the UUID's 16 bytes and the
// prefix's number, and any other key as a string. With a value type
// without pointers, the UUID-keyed entries hold no pointer at all: the
// collector does not scan them, and an entry takes about 40 bytes. Its
// JSON is an object, as a map[string]V's is, so a state's JSON does not
// change when a map becomes a Map.
//
// The zero Map is empty and ready to use. Copies of a Map share its
// entries, as copies of a Go map do, once it holds any.
package idmap

import (
	"encoding/json"
	"iter"

	"github.com/google/uuid"
)

// maxPrefixes bounds the distinct prefixes kept as numbers; keys with
// further prefixes are kept as strings.
const maxPrefixes = 16

// maxPrefixLen bounds a prefix kept as a number.
const maxPrefixLen = 32

// key is a UUID-suffixed key: the UUID and its prefix's number.
type key struct {
	id [16]byte
	p  uint8
}

type table[V any] struct {
	prefixes []string
	ids      map[key]V
	other    map[string]V
}

// Map maps string keys to values of V (see the package comment).
type Map[V any] struct{ t *table[V] }

// Len is the number of entries.
func (m Map[V]) Len() int {
	if m.t == nil {
		return 0
	}
	return len(m.t.ids) + len(m.t.other)
}

// IsZero reports whether m is empty (for the omitzero JSON option).
func (m Map[V]) IsZero() bool { return m.Len() == 0 }

// Get returns k's value and whether k is present.
func (m Map[V]) Get(k string) (V, bool) {
	var zero V
	if m.t == nil {
		return zero, false
	}
	if id, ok := m.t.split(k, false); ok {
		v, ok := m.t.ids[id]
		return v, ok
	}
	v, ok := m.t.other[k]
	return v, ok
}

// Set sets k's value. m must have been made by a Set (or be a pointer
// to the Map that is kept): the first Set of a zero Map allocates it.
func (m *Map[V]) Set(k string, v V) {
	if m.t == nil {
		m.t = &table[V]{}
	}
	t := m.t
	if id, ok := t.split(k, true); ok {
		if t.ids == nil {
			t.ids = make(map[key]V)
		}
		t.ids[id] = v
		return
	}
	if t.other == nil {
		t.other = make(map[string]V)
	}
	t.other[k] = v
}

// Delete removes k.
func (m Map[V]) Delete(k string) {
	if m.t == nil {
		return
	}
	if id, ok := m.t.split(k, false); ok {
		delete(m.t.ids, id)
		return
	}
	delete(m.t.other, k)
}

// DeleteFunc removes the entries whose value del reports true for.
func (m Map[V]) DeleteFunc(del func(V) bool) {
	if m.t == nil {
		return
	}
	for k, v := range m.t.ids {
		if del(v) {
			delete(m.t.ids, k)
		}
	}
	for k, v := range m.t.other {
		if del(v) {
			delete(m.t.other, k)
		}
	}
}

// All yields every entry, in no particular order.
func (m Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if m.t == nil {
			return
		}
		for k, v := range m.t.ids {
			if !yield(m.t.prefixes[k.p]+uuid.UUID(k.id).String(), v) {
				return
			}
		}
		for k, v := range m.t.other {
			if !yield(k, v) {
				return
			}
		}
	}
}

// MarshalJSON encodes m as a JSON object (keys sorted, as for a map).
func (m Map[V]) MarshalJSON() ([]byte, error) {
	all := make(map[string]V, m.Len())
	for k, v := range m.All() {
		all[k] = v
	}
	return json.Marshal(all)
}

// UnmarshalJSON decodes a JSON object into m, replacing its entries.
func (m *Map[V]) UnmarshalJSON(b []byte) error {
	var all map[string]V
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	m.t = nil
	for k, v := range all {
		m.Set(k, v)
	}
	return nil
}

// split returns k's UUID key when k ends in a canonical UUID after a
// known prefix (add: or one it may now number).
func (t *table[V]) split(k string, add bool) (key, bool) {
	if len(k) < 36 || len(k)-36 > maxPrefixLen {
		return key{}, false
	}
	id, ok := parseUUID(k[len(k)-36:])
	if !ok {
		return key{}, false
	}
	prefix := k[:len(k)-36]
	for i, p := range t.prefixes {
		if p == prefix {
			return key{id: id, p: uint8(i)}, true
		}
	}
	if !add || len(t.prefixes) == maxPrefixes {
		return key{}, false
	}
	t.prefixes = append(t.prefixes, prefix)
	return key{id: id, p: uint8(len(t.prefixes) - 1)}, true
}

const hexDigits = "0123456789abcdef"

// parseUUID parses the canonical form (lower-case hex, dashes at 8, 13,
// 18 and 23), the only one uuid.UUID.String gives back unchanged. It is
// uuid.Parse restricted to that form, by table: Get parses every key,
// and uuid.Parse with a check for upper case took 100 – 180 ns a Get
// against this one's 65.
func parseUUID(s string) (id [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	var bad byte
	for j, i := range uuidHexAt {
		hi, lo := unhex[s[i]], unhex[s[i+1]]
		bad |= hi | lo
		id[j] = hi<<4 | lo
	}
	return id, bad&0xf0 == 0
}

// uuidHexAt are the offsets of a canonical UUID's 16 hex pairs.
var uuidHexAt = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// unhex maps a lower-case hex digit to its value, anything else to 0xff.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range 16 {
		t[hexDigits[i]] = byte(i)
	}
	return t
}()
