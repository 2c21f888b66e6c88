// Package validate checks requests against Agora's OpenAPI document at
// the gateway, so that a request the document rejects is refused at the
// edge and never reaches a service.
//
// A refusal has the status and problem+json shape the service behind
// would have answered (package httpapi): 400 (errs.Invalid) for
// malformed input, with the offending fields listed by JSON path
// (`items[0].quantity`, `shipping_address.zip_code`) or parameter name;
// 415 for a body that is not JSON; and 422 (errs.Unprocessable) for a
// value the document marks with the schema extension x-unprocessable
// (Extension) — a well-formed value breaking one of the listed keywords,
// such as a zero or negative amount, which the services refuse as 422
// with the given reason. A request with any 400-class fault gets 400, as
// the services check a request's form before its meaning.
//
// Where the document is laxer than a service (a currency code that is
// not ISO 4217, data after the JSON value, a number in exponent form)
// the request passes and the service refuses it as before. What the edge
// cannot reproduce is a service's order between a fault in the request
// and one in the state it addresses: a negative deposit into a closed or
// missing account was a 409 or 404 and is now the edge's 422, as the
// edge checks the request before anything looks at the account.
//
// The gateway knows each request's route, so operations are looked up
// once per route pattern rather than per request by a router (the
// gorillamux router and openapi3filter.ValidateRequest cost 0.1 ms a
// GET). Parameters are checked with kin-openapi's
// openapi3filter.ValidateParameter (a plain string directly against its
// schema) and JSON bodies with its schema validator
// (openapi3.Schema.VisitJSON): kin-openapi's own, not its JSON Schema
// 2020-12 one, which compiles the schema on every call; the document's
// request schemas use no keyword on which the two differ (the tests
// check). Security is the gateway's business and is not checked here.
package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agora-commerce/agora/internal/gateway/edge"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/openapi"
)

// Extension is the schema extension that makes breaking some of a
// schema's keywords a 422 (errs.Unprocessable) rather than a 400. Its
// value is an object: "reason", the problem's reason (e.g.
// "invalid_amount"), and "keywords", the keywords it covers (e.g.
// ["minimum"]). A number that is not a plain integer literal within
// int64 stays a 400: the services cannot decode it.
const Extension = "x-unprocessable"

// Validator holds a document's operations, ready to check requests.
type Validator struct {
	ops map[string]*operation // by method and path template ("GET /a/{}")
}

// operation is one operation of the document, prepared for checking.
type operation struct {
	path   string // the document's path template
	params []*openapi3.Parameter
	// plain holds the schemas of the parameters whose values are plain
	// strings, which need no decoding.
	plain map[*openapi3.Parameter]plain
	// headers holds the canonical header names of header parameters.
	headers map[*openapi3.Parameter]string
	// body is the JSON schema of the request body, if any; required says
	// whether a body must be sent.
	body     *openapi3.Schema
	required bool
}

// options are what parameter checks pass to kin-openapi: every fault at
// once, and nothing written into the request.
var options = &openapi3filter.Options{MultiError: true, SkipSettingDefaults: true}

// New prepares the operations of doc, a document with its references
// resolved (openapi.Load).
func New(doc *openapi3.T) *Validator {
	v := &Validator{ops: map[string]*operation{}}
	if doc.Paths == nil {
		return v
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := &operation{path: path}
			for _, p := range item.Parameters {
				if p.Value != nil && op.Parameters.GetByInAndName(p.Value.In, p.Value.Name) == nil {
					o.params = append(o.params, p.Value)
				}
			}
			for _, p := range op.Parameters {
				if p.Value != nil {
					o.params = append(o.params, p.Value)
				}
			}
			for _, p := range o.params {
				if p.In == openapi3.ParameterInHeader {
					if o.headers == nil {
						o.headers = map[*openapi3.Parameter]string{}
					}
					o.headers[p] = http.CanonicalHeaderKey(p.Name)
				}
				if s := plainString(p); s != nil {
					if o.plain == nil {
						o.plain = map[*openapi3.Parameter]plain{}
					}
					o.plain[p] = plain{schema: s, accept: quickAccept(s)}
				}
			}
			if rb := op.RequestBody; rb != nil && rb.Value != nil {
				if mt := rb.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					o.body, o.required = mt.Schema.Value, rb.Value.Required
				}
			}
			v.ops[method+" "+template(path)] = o
		}
	}
	return v
}

// plainString returns the schema of parameter p if p's value is a plain
// string (a string schema, serialized in the default style, without
// content), else nil.
// plain is a parameter whose value is a plain string, and its schema.
type plain struct {
	schema *openapi3.Schema
	// accept, when not nil, is a quick test that a value satisfies the
	// schema; a value it does not accept is checked by kin-openapi, for
	// the verdict and its message.
	accept func(string) bool
}

// quickAccept returns a quick test of a string schema that constrains
// nothing but length and pattern (IDs, keys, request IDs: most
// parameters, checked on every request), or nil. It agrees with
// kin-openapi, which checks the same keywords with the same regexp
// package; the package tests compare the two.
func quickAccept(s *openapi3.Schema) func(string) bool {
	if len(s.Enum) > 0 || s.Format != "" || s.Const != nil || s.Nullable || strings.Contains(s.Pattern, `\u`) {
		return nil // \u escapes kin-openapi rewrites before compiling
	}
	var match func(string) bool
	if s.Pattern != "" {
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return nil
		}
		match = re.MatchString
		if set, lo, hi, ok := byteRun(s.Pattern); ok {
			// ^[class]{lo,hi}$ (or + or *): a table lookup per byte.
			match = func(v string) bool {
				if len(v) < lo || (hi >= 0 && len(v) > hi) {
					return false
				}
				for i := 0; i < len(v); i++ {
					if !set[v[i]] {
						return false
					}
				}
				return true
			}
		}
	}
	minLen, maxLen := s.MinLength, s.MaxLength
	return func(v string) bool {
		// ASCII only, where a string's length (JSON Schema counts UTF-16
		// units) is its byte count; anything else goes to kin-openapi.
		for i := 0; i < len(v); i++ {
			if v[i] >= utf8.RuneSelf {
				return false
			}
		}
		n := uint64(len(v))
		return n >= minLen && (maxLen == nil || n <= *maxLen) && (match == nil || match(v))
	}
}

// byteRun reports whether pattern is one character class repeated
// between the start and the end of the text — ^[class]{lo,hi}$, or with
// + or * (hi -1: no bound) — and returns the class's ASCII members. Only
// ASCII values reach the test it serves.
func byteRun(pattern string) (set [utf8.RuneSelf]bool, lo, hi int, ok bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return set, 0, 0, false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) != 3 || re.Sub[0].Op != syntax.OpBeginText || re.Sub[2].Op != syntax.OpEndText {
		return set, 0, 0, false
	}
	run := re.Sub[1]
	switch run.Op {
	case syntax.OpPlus:
		lo, hi = 1, -1
	case syntax.OpStar:
		lo, hi = 0, -1
	case syntax.OpRepeat:
		lo, hi = run.Min, run.Max
	default:
		return set, 0, 0, false
	}
	if len(run.Sub) != 1 || run.Sub[0].Op != syntax.OpCharClass {
		return set, 0, 0, false
	}
	rr := run.Sub[0].Rune
	for i := 0; i+1 < len(rr); i += 2 {
		for c := rr[i]; c <= rr[i+1] && c < utf8.RuneSelf; c++ {
			set[c] = true
		}
	}
	return set, lo, hi, true
}

func plainString(p *openapi3.Parameter) *openapi3.Schema {
	if p.Content != nil || p.Schema == nil || p.Schema.Value == nil || (p.Style != "" && p.Style != openapi3.SerializationSimple && p.Style != openapi3.SerializationForm) {
		return nil
	}
	s := p.Schema.Value
	if s.Type == nil || !s.Type.Is(openapi3.TypeString) || len(s.OneOf)+len(s.AnyOf)+len(s.AllOf) > 0 || s.Not != nil {
		return nil
	}
	return s
}

var byDefault = sync.OnceValues(func() (*Validator, error) {
	doc, err := openapi.Load(context.Background())
	if err != nil {
		return nil, err
	}
	return New(doc), nil
})

// Default returns the Validator of the embedded document
// (openapi.Load), built once.
func Default() (*Validator, error) { return byDefault() }

// template is path with every {wildcard} reduced to {}: the shape that
// matches a route to an operation whatever their wildcards' names.
func template(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		b.WriteByte(path[i])
		if path[i] == '{' {
			if j := strings.IndexByte(path[i:], '}'); j > 0 {
				i += j
				b.WriteByte('}')
			}
		}
	}
	return b.String()
}

// wildcards returns the names of path's {wildcards}, in order.
func wildcards(path string) []string {
	var names []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return names
		}
		names = append(names, path[i+1:i+j])
		path = path[i+j+1:]
	}
}

// Describes reports whether the document has an operation for pattern,
// a ServeMux pattern such as "GET /api/v1/products/{id}".
func (v *Validator) Describes(pattern string) bool { return v.lookup(pattern) != nil }

func (v *Validator) lookup(pattern string) *operation {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		return nil
	}
	return v.ops[method+" "+template(path)]
}

// Handler returns next behind a check of each request against the
// document's operation for pattern, the ServeMux pattern that routes
// the requests (so that r.PathValue holds its wildcards): an invalid
// request is refused with problem+json and never reaches next; a valid
// one reaches it with its body intact. A pattern the document does not
// describe gets next itself.
func (v *Validator) Handler(pattern string, next http.Handler) http.Handler {
	op := v.lookup(pattern)
	if op == nil {
		return next
	}
	_, path, _ := strings.Cut(pattern, " ")
	c := &checker{op: op, wildcards: map[string]string{}}
	names := wildcards(path)
	for i, name := range wildcards(op.path) {
		if i < len(names) {
			c.wildcards[name] = names[i]
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := c.check(r); e != nil {
			httpapi.Error(w, r, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checker checks the requests of one route.
type checker struct {
	op *operation
	// wildcards maps the document's path parameters to the route's
	// wildcards.
	wildcards map[string]string
}

// fault is one thing wrong with a request.
type fault struct {
	field, message string
	status         int
	reason         string
}

// check returns why r must be refused, or nil.
func (c *checker) check(r *http.Request) *errs.Error {
	var faults []fault
	var input *openapi3filter.RequestValidationInput
	var query url.Values
	for _, p := range c.op.params {
		// An absent or empty query parameter is not sent, as the
		// services read them (the document's allowEmptyValue).
		var raw string
		switch p.In {
		case openapi3.ParameterInPath:
			raw = r.PathValue(c.wildcards[p.Name])
		case openapi3.ParameterInQuery:
			if r.URL.RawQuery == "" && !p.Required {
				continue
			}
			if query == nil {
				query = r.URL.Query()
			}
			if raw = query.Get(p.Name); raw == "" && !p.Required {
				continue
			}
		case openapi3.ParameterInHeader:
			// A header sent empty is checked like any value (an empty
			// Agora-Min-Position or Idempotency-Key is refused, as the
			// document's schemas say); only an absent one is not sent.
			vs := r.Header[c.op.headers[p]]
			if len(vs) == 0 && !p.Required {
				continue
			}
			if len(vs) > 0 {
				raw = vs[0]
			}
		default:
			continue
		}
		if s, ok := c.op.plain[p]; ok && raw != "" {
			// A plain string is itself: its schema is all there is to check.
			if s.accept != nil && s.accept(raw) {
				continue
			}
			if err := s.schema.VisitJSON(raw, openapi3.MultiErrors()); err != nil {
				faults = paramFaults(faults, p, err)
			}
			continue
		}
		if input == nil {
			input = &openapi3filter.RequestValidationInput{Request: r, Options: options, QueryParams: query}
			if len(c.wildcards) > 0 {
				input.PathParams = make(map[string]string, len(c.wildcards))
				for name, wildcard := range c.wildcards {
					input.PathParams[name] = r.PathValue(wildcard)
				}
			}
		}
		if err := openapi3filter.ValidateParameter(r.Context(), input, p); err != nil {
			faults = paramFaults(faults, p, err)
		}
	}
	if c.op.body != nil {
		faults = c.checkBody(faults, r)
	}
	return refusal(faults)
}

// checkBody appends the faults of r's body, which it reads and puts
// back.
func (c *checker) checkBody(faults []fault, r *http.Request) []fault {
	data, err := edge.Body(nil, r, httpapi.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return append(faults, fault{status: http.StatusRequestEntityTooLarge, message: fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit)})
		}
		return append(faults, fault{status: http.StatusBadRequest, message: "the request body could not be read"})
	}
	if len(data) == 0 && !c.op.required {
		return faults
	}
	// The services refuse a body that is not JSON before reading it.
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return append(faults, fault{status: http.StatusUnsupportedMediaType, message: fmt.Sprintf("Content-Type must be application/json, not %q", ct)})
		}
	}
	if len(data) == 0 {
		return append(faults, fault{status: http.StatusBadRequest, message: "request body is empty; a JSON object is required"})
	}
	var value any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&value); err != nil {
		var syntax *json.SyntaxError
		msg := "request body is not valid JSON"
		switch {
		case errors.As(err, &syntax):
			msg = fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax)
		case errors.Is(err, io.ErrUnexpectedEOF):
			msg = "request body is truncated JSON"
		}
		return append(faults, fault{status: http.StatusBadRequest, message: msg})
	}
	if err := c.op.body.VisitJSON(value, openapi3.VisitAsRequest(), openapi3.MultiErrors()); err != nil {
		faults = schemaFaults(faults, err, value, "")
	}
	return faults
}

// refusal is the error that refuses a request with faults, or nil when
// there are none: 400 if any fault is one, else 413, 415 or 422.
func refusal(faults []fault) *errs.Error {
	if len(faults) == 0 {
		return nil
	}
	status := 0
	for _, f := range faults {
		if status == 0 || f.status == http.StatusBadRequest || (status != http.StatusBadRequest && f.status < status) {
			status = f.status
		}
	}
	e := &errs.Error{Code: errs.Invalid, Message: "request has invalid fields"}
	switch status {
	case http.StatusUnprocessableEntity:
		e.Code = errs.Unprocessable
	case http.StatusUnsupportedMediaType:
		e.Code = errs.Unsupported
	case http.StatusRequestEntityTooLarge:
		e.Code = errs.TooLarge
	}
	general := false
	for _, f := range faults {
		switch {
		case f.field == "" && !general && f.status == status:
			e.Message, general = f.message, true
		case f.field != "":
			// One entry per field, with all that is wrong with it.
			if i := slices.IndexFunc(e.Fields, func(fe errs.FieldError) bool { return fe.Field == f.field }); i >= 0 {
				if !strings.Contains(e.Fields[i].Message, f.message) {
					e.Fields[i].Message += "; " + f.message
				}
			} else {
				e.Fields = append(e.Fields, errs.FieldError{Field: f.field, Message: f.message})
			}
		}
		if f.status == status && e.Reason == "" {
			e.Reason = f.reason
		}
	}
	return e
}

// paramFaults appends the faults of parameter p, which kin-openapi's
// ValidateParameter reported as err.
func paramFaults(faults []fault, p *openapi3.Parameter, err error) []fault {
	var re *openapi3filter.RequestError
	if errors.As(err, &re) && re.Err != nil {
		err = re.Err
	}
	var parse *openapi3filter.ParseError
	switch {
	case errors.Is(err, openapi3filter.ErrInvalidRequired):
		return append(faults, fault{field: p.Name, message: "is required", status: http.StatusBadRequest})
	case errors.Is(err, openapi3filter.ErrInvalidEmptyValue):
		return append(faults, fault{field: p.Name, message: "must not be empty", status: http.StatusBadRequest})
	case errors.As(err, &parse):
		msg := "is malformed"
		if p.Schema != nil && p.Schema.Value != nil {
			msg = "must be " + typeNames(p.Schema.Value)
		}
		return append(faults, fault{field: p.Name, message: msg, status: http.StatusBadRequest})
	}
	n := len(faults)
	faults = schemaFaults(faults, err, nil, p.Name)
	if len(faults) == n {
		faults = append(faults, fault{field: p.Name, message: err.Error(), status: http.StatusBadRequest})
	}
	return faults
}

// schemaFaults appends the faults of err, an error of a schema's
// VisitJSON on root; the fields are paths in root (under prefix).
func schemaFaults(faults []fault, err error, root any, prefix string) []fault {
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, err := range e {
			faults = schemaFaults(faults, err, root, prefix)
		}
		return faults
	case *openapi3.SchemaError:
		return schemaErrorFaults(faults, e, root, prefix)
	}
	if inner := errors.Unwrap(err); inner != nil {
		return schemaFaults(faults, inner, root, prefix)
	}
	return append(faults, fault{field: prefix, message: err.Error(), status: http.StatusBadRequest})
}

// schemaErrorFaults appends the faults of e. A value matching none of a
// oneOf's schemas is judged by the one schema its type fits, if one
// does; allOf's errors are its schemas'.
func schemaErrorFaults(faults []fault, e *openapi3.SchemaError, root any, prefix string) []fault {
	ptr := e.JSONPointer()
	switch e.SchemaField {
	case "oneOf":
		var fit []error
		for _, alt := range combined(e.Origin) {
			if !typeMismatchAt(alt, ptr) {
				fit = append(fit, alt)
			}
		}
		if len(fit) == 1 {
			return schemaFaults(faults, fit[0], root, prefix)
		}
		msg := "must be " + typeNames(e.Schema)
		if len(fit) > 1 || errors.Is(e.Origin, openapi3.ErrOneOfConflict) {
			msg = "matches none or several of the allowed forms"
		}
		return append(faults, fault{field: fieldPath(root, prefix, ptr), message: msg, status: http.StatusBadRequest})
	case "allOf":
		if subs := combined(e.Origin); len(subs) > 0 {
			for _, sub := range subs {
				faults = schemaFaults(faults, sub, root, prefix)
			}
			return faults
		}
	}
	f := fault{field: fieldPath(root, prefix, ptr), message: e.Reason, status: http.StatusBadRequest}
	switch e.SchemaField {
	case "properties", "additionalProperties":
		if rest, ok := strings.CutPrefix(e.Reason, "property "); ok {
			if q, err := strconv.QuotedPrefix(rest); err == nil {
				name, _ := strconv.Unquote(q)
				f.field, f.message = joinField(f.field, name), "unknown field"
			}
		}
	case "required":
		f.message = "is required"
	case "type":
		f.message = "must be " + typeNames(e.Schema)
	case "nullable":
		f.message = "must not be null"
	}
	if f.field == "" { // the body itself
		if e.SchemaField == "type" {
			f.message = "request body " + f.message
		} else {
			f.message = "request body: " + f.message
		}
	}
	f.status, f.reason = classify(e, root, ptr)
	return append(faults, f)
}

// combined returns the errors of a oneOf's or allOf's schemas that
// origin wraps.
func combined(origin error) []error {
	for err := origin; err != nil; err = errors.Unwrap(err) {
		if me, ok := err.(openapi3.MultiError); ok {
			return me
		}
	}
	return nil
}

// typeMismatchAt reports whether err says that the value at ptr is not
// of its schema's type.
func typeMismatchAt(err error, ptr []string) bool {
	switch e := err.(type) {
	case openapi3.MultiError:
		return slices.ContainsFunc(e, func(err error) bool { return typeMismatchAt(err, ptr) })
	case *openapi3.SchemaError:
		return (e.SchemaField == "type" || e.SchemaField == "nullable") && slices.Equal(e.JSONPointer(), ptr)
	}
	return false
}

// classify returns the status (and reason) of breaking schema error e's
// keyword: 422 if the schema's Extension lists it, else 400.
func classify(e *openapi3.SchemaError, root any, ptr []string) (int, string) {
	if e.Schema == nil {
		return http.StatusBadRequest, ""
	}
	x, ok := e.Schema.Extensions[Extension].(map[string]any)
	if !ok {
		return http.StatusBadRequest, ""
	}
	keywords, _ := x["keywords"].([]any)
	if !slices.Contains(keywords, any(e.SchemaField)) {
		return http.StatusBadRequest, ""
	}
	// A number the services cannot decode into an int64 is malformed.
	if v, ok := valueAt(root, ptr); ok {
		if n, isNumber := v.(json.Number); isNumber {
			if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
				return http.StatusBadRequest, ""
			}
		}
	}
	reason, _ := x["reason"].(string)
	return http.StatusUnprocessableEntity, reason
}

// valueAt returns the value at ptr in root.
func valueAt(root any, ptr []string) (any, bool) {
	v := root
	for _, key := range ptr {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[key]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// fieldPath names the value at ptr in root as a field path under prefix:
// `items[0].quantity`. Without root, a token of digits is an index.
func fieldPath(root any, prefix string, ptr []string) string {
	field := prefix
	v := root
	for _, key := range ptr {
		index := false
		switch c := v.(type) {
		case []any:
			index = true
			if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(c) {
				v = c[i]
			} else {
				v = nil
			}
		case map[string]any:
			v = c[key]
		default:
			index = key != "" && strings.Trim(key, "0123456789") == ""
			v = nil
		}
		if index {
			field += "[" + key + "]"
		} else {
			field = joinField(field, key)
		}
	}
	return field
}

func joinField(field, name string) string {
	if field == "" {
		return name
	}
	return field + "." + name
}

// typeNames describes the types schema s allows: "an integer", "an
// object or an integer".
func typeNames(s *openapi3.Schema) string {
	var names []string
	add := func(t *openapi3.Types) {
		if t == nil {
			return
		}
		for _, name := range *t {
			article := "a "
			if strings.ContainsRune("aeiou", rune(name[0])) {
				article = "an "
			}
			if name == openapi3.TypeNull {
				article = ""
			}
			if !slices.Contains(names, article+name) {
				names = append(names, article+name)
			}
		}
	}
	if s != nil {
		add(s.Type)
		for _, alt := range s.OneOf {
			if alt.Value != nil {
				add(alt.Value.Type)
			}
		}
	}
	switch len(names) {
	case 0:
		return "of another type"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
