// Package bounded holds maps whose size has a fixed bound, for what a
// long-lived process remembers about an ever-growing set of keys (streams,
// orders, sagas, messages): the newest keys are kept, the oldest are
// forgotten, and memory stays flat however long the process runs.
package bounded

// Map is a map of at most Cap entries that forgets its least recently
// used ones, approximately: it keeps two generations, the current one
// (written and promoted to) and the previous one (only read). When the
// current generation holds Cap/2 entries, the previous one is dropped
// whole and the current one takes its place. So a key set or read in the
// last Cap/2 insertions is always kept, nothing older than the last Cap
// insertions is, and no generation is ever scanned or cleared: dropping a
// map hands its memory back to the collector at once.
//
// A Map is not safe for concurrent use; its owner locks it if needed.
// The zero Map is not usable: make one with New.
type Map[K comparable, V any] struct {
	cur, old map[K]V
	half     int
}

// New returns an empty map of at most capacity entries (at least 2).
func New[K comparable, V any](capacity int) *Map[K, V] {
	half := max(capacity/2, 1)
	return &Map[K, V]{cur: make(map[K]V), old: make(map[K]V), half: half}
}

// Cap is the most entries m holds.
func (m *Map[K, V]) Cap() int { return 2 * m.half }

// Len is how many entries m holds (at most Cap).
func (m *Map[K, V]) Len() int { return len(m.cur) + len(m.old) }

// Get returns k's value, if m still holds it; an entry found in the
// previous generation moves to the current one.
func (m *Map[K, V]) Get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.old[k]
	if ok {
		delete(m.old, k)
		m.put(k, v)
	}
	return v, ok
}

// Peek returns k's value, if m still holds it, without moving it.
func (m *Map[K, V]) Peek(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.old[k]
	return v, ok
}

// Put sets k's value.
func (m *Map[K, V]) Put(k K, v V) {
	if _, ok := m.cur[k]; ok {
		m.cur[k] = v
		return
	}
	delete(m.old, k)
	m.put(k, v)
}

// put adds k, which neither generation holds, to the current one.
func (m *Map[K, V]) put(k K, v V) {
	if len(m.cur) >= m.half {
		m.old, m.cur = m.cur, make(map[K]V, m.half)
	}
	m.cur[k] = v
}

// Delete forgets k.
func (m *Map[K, V]) Delete(k K) {
	delete(m.cur, k)
	delete(m.old, k)
}

// Clear forgets every entry.
func (m *Map[K, V]) Clear() {
	m.cur, m.old = make(map[K]V), make(map[K]V)
}
