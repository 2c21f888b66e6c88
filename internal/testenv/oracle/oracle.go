// Package oracle generates HTTP request parts from the JSON schemas of an
// OpenAPI document — values that validate, and mutations that each break
// the schema in one place or send something odd — for tests that use the
// document as an oracle (internal/server's TestOpenAPIOracle). Everything
// it makes comes from its random source, so one seed makes one run.
package oracle

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// Omit, returned by a Fill function, leaves an optional property out.
var Omit = omit{}

type omit struct{}

// RawString is a string value sent as its bytes between quotes, unescaped,
// so that a body can carry invalid UTF-8.
type RawString string

// MarshalJSON writes s between quotes as it is.
func (s RawString) MarshalJSON() ([]byte, error) { return []byte(`"` + string(s) + `"`), nil }

// Gen makes values from schemas.
type Gen struct {
	// R is the random source of every choice.
	R *rand.Rand
	// Fill, if set, supplies a realistic value for a property or
	// parameter called name (ok false: make one from the schema), or Omit.
	Fill func(name string, s *openapi3.Schema) (v any, ok bool)
}

// Schema returns ref's schema, through a lone allOf (how the document
// adds a default or description to a $ref).
func Schema(ref *openapi3.SchemaRef) *openapi3.Schema {
	if ref == nil || ref.Value == nil {
		return &openapi3.Schema{}
	}
	s := ref.Value
	if s.Type == nil && len(s.AllOf) == 1 && len(s.Properties) == 0 {
		return Schema(s.AllOf[0])
	}
	return s
}

func is(s *openapi3.Schema, typ string) bool { return s.Type != nil && s.Type.Is(typ) }

// Value makes a value that validates against ref (within reason: it
// checks and retries, and gives up after a few tries).
func (g *Gen) Value(name string, ref *openapi3.SchemaRef) any {
	s := Schema(ref)
	var v any
	for range 8 {
		v = g.value(name, s, 0)
		if s.VisitJSON(normalise(v)) == nil {
			return v
		}
	}
	return v
}

// normalise turns v into what json.Unmarshal would make of it, the form
// VisitJSON checks.
func normalise(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

func (g *Gen) value(name string, s *openapi3.Schema, depth int) any {
	if g.Fill != nil {
		if v, ok := g.Fill(name, s); ok {
			return v
		}
	}
	switch {
	case len(s.OneOf) > 0:
		return g.value(name, Schema(s.OneOf[g.R.IntN(len(s.OneOf))]), depth+1)
	case len(s.AnyOf) > 0:
		return g.value(name, Schema(s.AnyOf[g.R.IntN(len(s.AnyOf))]), depth+1)
	case len(s.AllOf) > 0 && s.Type == nil:
		return g.value(name, Schema(s.AllOf[0]), depth+1)
	case len(s.Enum) > 0:
		return s.Enum[g.R.IntN(len(s.Enum))]
	case is(s, "object"):
		obj := map[string]any{}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range s.Properties {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			if !slices.Contains(s.Required, k) && (depth > 4 || g.R.IntN(2) == 0) && uint64(len(obj)) >= s.MinProps {
				continue
			}
			v := g.value(k, Schema(s.Properties[k]), depth+1)
			if v == Omit {
				continue
			}
			obj[k] = v
		}
		for _, k := range keys { // minProperties
			if uint64(len(obj)) >= s.MinProps {
				break
			}
			if _, ok := obj[k]; !ok {
				if v := g.value(k, Schema(s.Properties[k]), depth+1); v != Omit {
					obj[k] = v
				}
			}
		}
		return obj
	case is(s, "array"):
		lo, hi := int(s.MinItems), 3
		if s.MaxItems != nil && int(*s.MaxItems) < hi {
			hi = int(*s.MaxItems)
		}
		if lo > hi {
			hi = lo
		}
		n := lo + g.R.IntN(hi-lo+1)
		arr := make([]any, 0, n)
		for range n {
			arr = append(arr, g.value(name, Schema(s.Items), depth+1))
		}
		return arr
	case is(s, "integer"):
		lo, hi := int64(0), int64(1000)
		if s.Min != nil {
			lo = int64(math.Max(*s.Min, math.MinInt64/2))
			hi = lo + 1000
		}
		if s.Max != nil && *s.Max < float64(hi) {
			hi = int64(*s.Max)
		}
		if hi < lo {
			hi = lo
		}
		return lo + g.R.Int64N(hi-lo+1)
	case is(s, "number"):
		return float64(g.R.IntN(10000)) / 100
	case is(s, "boolean"):
		return g.R.IntN(2) == 0
	case is(s, "string"):
		return g.String(s)
	}
	return "x" // no type: anything goes
}

// knownPatterns makes strings for the patterns the document uses.
var knownPatterns = map[string]func(g *Gen) string{
	`^[A-Z]{3}$`:                        func(*Gen) string { return "USD" },
	`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`: func(g *Gen) string { return fmt.Sprintf("SKU-%08x", g.R.Uint32()) },
	`^[a-z0-9][a-z0-9-]{0,62}$`:         func(*Gen) string { return "demo" },
	`^[0-9a-f]{32}$`:                    func(g *Gen) string { return fmt.Sprintf("%016x%016x", g.R.Uint64(), g.R.Uint64()) },
	`^[a-z][a-z0-9_]*$`:                 func(g *Gen) string { return "r" + strconv.Itoa(g.R.IntN(1000)) },
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// String makes a string that validates against s.
func (g *Gen) String(s *openapi3.Schema) string {
	switch s.Format {
	case "email":
		return fmt.Sprintf("u%012x@example.com", g.R.Uint64()&0xffffffffffff)
	case "date-time":
		return time.Unix(1_700_000_000+g.R.Int64N(1e8), 0).UTC().Format(time.RFC3339)
	case "uuid":
		return UUID(g.R)
	}
	if f, ok := knownPatterns[s.Pattern]; ok {
		return f(g)
	}
	lo, hi := int(s.MinLength), 12
	if lo < 1 {
		lo = 1
	}
	if s.MaxLength != nil && int(*s.MaxLength) < hi {
		hi = int(*s.MaxLength)
	}
	if hi < lo {
		hi = lo
	}
	n := lo + g.R.IntN(hi-lo+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[g.R.IntN(len(alnum))]
	}
	return string(b)
}

// UUID makes a version 4 UUID from r.
func UUID(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	a = a&^0xf000 | 0x4000
	b = b&^(0xc<<60) | 0x8<<60
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// OddStrings are strings that break naive handling of text: direction
// marks, NUL and other controls, combining marks, emoji, look-alikes,
// markup and injection attempts, and bytes that are not UTF-8 (as
// RawString). Long and huge ones come from Long.
func OddStrings() []any {
	return []any{
		"\u200f\u202eevil\u202c\u200e", // RTL mark and override
		"a\u0000b",                     // NUL
		"\u0000",                       // only NUL
		"tab\tnew\nline\rcr",           // controls
		"\u001b[31mred\u001b[0m",       // ANSI escape
		"e\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308",     // combining marks
		"Z\u0336\u0335\u0334a\u0337\u0338l\u0321\u0322g\u0327o", // zalgo
		"😀👨‍👩‍👧‍👦🏳️‍🌈",                                          // emoji and ZWJ sequences
		"\U0001F600",                // astral plane
		"ＡＤＭＩＮ",                     // full-width look-alike
		"\ufeffbom",                 // byte order mark
		"\u2028\u2029",              // JS line separators
		" ",                         // blank
		"<script>alert(1)</script>", // markup
		"'; DROP TABLE events; --",  // SQL
		"%s%n%x%d",                  // format verbs
		"../../../etc/passwd",       // traversal
		"${jndi:ldap://x}",          // template
		"\\u0000",                   // an escaped escape
		RawString("\xff\xfe\xfd"),   // not UTF-8
		RawString("ok\xc3\x28"),     // a broken sequence
		RawString("\xed\xa0\x80"),   // an encoded surrogate
	}
}

// Long returns a string of n bytes (n even) of a two-byte letter.
func Long(n int) string { return strings.Repeat("ü", n/2) }
