package oracle

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Site is one value inside a body and the schema that describes it.
type Site struct {
	// Path leads from the root to the value: object keys (string) and
	// array indices (int).
	Path []any
	// Schema describes the value (for a oneOf, the branch it took).
	Schema *openapi3.Schema
}

func (s Site) String() string {
	if len(s.Path) == 0 {
		return "body"
	}
	var b strings.Builder
	for i, p := range s.Path {
		switch p := p.(type) {
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		}
	}
	return b.String()
}

// Sites lists v and every value inside it, each with its schema.
func Sites(v any, ref *openapi3.SchemaRef) []Site {
	var out []Site
	var walk func(v any, s *openapi3.Schema, path []any)
	walk = func(v any, s *openapi3.Schema, path []any) {
		s = branch(v, s)
		out = append(out, Site{Path: path, Schema: s})
		switch v := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(v) {
				if p := s.Properties[k]; p != nil {
					walk(v[k], Schema(p), append(path[:len(path):len(path)], k))
				}
			}
		case []any:
			for i, e := range v {
				walk(e, Schema(s.Items), append(path[:len(path):len(path)], i))
			}
		}
	}
	walk(v, Schema(ref), nil)
	return out
}

// branch picks the oneOf or anyOf branch of s that v's kind fits.
func branch(v any, s *openapi3.Schema) *openapi3.Schema {
	alts := s.OneOf
	if len(alts) == 0 {
		alts = s.AnyOf
	}
	for _, a := range alts {
		b := Schema(a)
		switch v.(type) {
		case map[string]any:
			if is(b, "object") {
				return b
			}
		case []any:
			if is(b, "array") {
				return b
			}
		case string:
			if is(b, "string") {
				return b
			}
		case int64, int, float64:
			if is(b, "integer") || is(b, "number") {
				return b
			}
		}
	}
	return s
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Mutate returns a copy of body changed at one of its sites — a wrong
// type, a bound or enum or pattern broken, a required property missing,
// an unknown one added, null, or an odd or huge string — and says what
// it did. The result may still validate (an odd string within its
// bounds): the caller asks the document.
func (g *Gen) Mutate(body any, ref *openapi3.SchemaRef) (any, string) {
	sites := Sites(body, ref)
	site := sites[g.R.IntN(len(sites))]
	cur := get(body, site.Path)
	type change struct {
		name string
		v    any
	}
	s := site.Schema
	var cs []change
	add := func(name string, v any) { cs = append(cs, change{name, v}) }
	add("null", nil)
	switch cur := cur.(type) {
	case map[string]any:
		add("a string for an object", "x")
		add("an array for an object", []any{})
		add("an unknown property", with(cur, "unexpected_field", 1))
		add("an unknown property, odd name", with(cur, "\u202e\u0000", "x"))
		for _, k := range s.Required {
			if _, ok := cur[k]; ok {
				add("required "+k+" missing", without(cur, k))
			}
		}
		if len(s.Required) == 0 {
			add("empty object", map[string]any{})
		}
	case []any:
		add("an object for an array", map[string]any{})
		add("a string for an array", "x")
		if s.MinItems > 0 {
			add("too few items", []any{})
		}
		if s.MaxItems != nil && len(cur) > 0 {
			arr := make([]any, int(*s.MaxItems)+1)
			for i := range arr {
				arr[i] = cur[0]
			}
			add("too many items", arr)
		}
		add("a null item", append(append([]any{}, cur...), nil))
	case string:
		add("a number for a string", 12345)
		add("a boolean for a string", true)
		add("an array for a string", []any{cur})
		if s.MaxLength != nil && *s.MaxLength < 1<<20 {
			add("longer than maxLength", strings.Repeat("x", int(*s.MaxLength)+1))
		}
		if s.MinLength > 0 {
			add("shorter than minLength", "")
		}
		if len(s.Enum) > 0 {
			add("not in enum", "NotAnEnumValue")
			add("enum in another case", strings.ToLower(fmt.Sprint(s.Enum[0]))+"X")
		}
		if s.Pattern != "" {
			add("pattern broken", "bad value!")
		}
		if s.Format != "" {
			add("format "+s.Format+" broken", "not-a-"+s.Format)
		}
		odd := OddStrings()
		add("odd string", odd[g.R.IntN(len(odd))])
		add("odd string", odd[g.R.IntN(len(odd))])
		add("10 KiB string", Long(10<<10))
		if g.R.IntN(8) == 0 {
			add("1 MiB string", Long(1<<20))
		}
	case int64, int, float64, json.Number:
		add("a string for a number", "12")
		add("a fraction", 1.5)
		add("a boolean for a number", false)
		add("an overflowing number", json.Number("99999999999999999999999"))
		add("an exponent", json.Number("1e400"))
		add("negative", -1)
		if s.Max != nil {
			if *s.Max >= math.MaxInt64 {
				add("above maximum", json.Number("9223372036854775808"))
			} else {
				add("above maximum", json.Number(strconv.FormatInt(int64(*s.Max)+1, 10)))
			}
		}
		if s.Min != nil {
			if *s.Min <= math.MinInt64 {
				add("below minimum", json.Number("-9223372036854775809"))
			} else {
				add("below minimum", json.Number(strconv.FormatInt(int64(*s.Min)-1, 10)))
			}
		}
	case bool:
		add("a string for a boolean", "true")
		add("a number for a boolean", 1)
	}
	c := cs[g.R.IntN(len(cs))]
	return set(body, site.Path, c.v), site.String() + ": " + c.name
}

func with(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[k] = v
	return out
}

func without(m map[string]any, k string) map[string]any {
	out := make(map[string]any, len(m))
	for kk, v := range m {
		if kk != k {
			out[kk] = v
		}
	}
	return out
}

func get(v any, path []any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			v = v.(map[string]any)[p]
		case int:
			v = v.([]any)[p]
		}
	}
	return v
}

// set returns a copy of v with the value at path replaced by nv; what
// is not on the path is shared.
func set(v any, path []any, nv any) any {
	if len(path) == 0 {
		return nv
	}
	switch p := path[0].(type) {
	case string:
		m := v.(map[string]any)
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = e
		}
		out[p] = set(m[p], path[1:], nv)
		return out
	case int:
		a := v.([]any)
		out := append([]any{}, a...)
		out[p] = set(a[p], path[1:], nv)
		return out
	}
	return v
}

// RawBody is a request body that is not the JSON of a value.
type RawBody struct {
	Name        string
	Body        []byte
	ContentType string // "" sends none
}

// RawBodies returns bodies broken below the level of values: bad JSON,
// the wrong media type, the wrong JSON kind, a body too large, nesting
// too deep, bytes that are not UTF-8.
func RawBodies() []RawBody {
	const json = "application/json"
	return []RawBody{
		{"malformed JSON", []byte(`{"a":`), json},
		{"trailing garbage", []byte(`{}{}`), json},
		{"trailing comma", []byte(`{"a":1,}`), json},
		{"empty body", nil, json},
		{"JSON null", []byte(`null`), json},
		{"JSON array", []byte(`[]`), json},
		{"JSON string", []byte(`"x"`), json},
		{"JSON number", []byte(`7`), json},
		{"single quotes", []byte(`{'a':1}`), json},
		{"no content type", []byte(`{}`), ""},
		{"text/plain", []byte(`{}`), "text/plain"},
		{"form", []byte(`a=1`), "application/x-www-form-urlencoded"},
		{"odd media type", []byte(`{}`), "application/json; charset=ebcdic"},
		{"deep nesting", []byte(strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000)), json},
		{"deep array", []byte(strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000)), json},
		{"not UTF-8", []byte("{\"\xff\":\"\xfe\"}"), json},
		{"UTF-16 BOM", []byte("\xfe\xff\x00{\x00}"), json},
		{"body over 1 MiB", []byte(`{"x":"` + strings.Repeat("x", 1<<20+10) + `"}`), json},
		{"NUL bytes", []byte("{\x00}"), json},
	}
}
