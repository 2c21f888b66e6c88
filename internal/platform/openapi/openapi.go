// Package openapi holds Agora's HTTP contract as an OpenAPI 3.1 document
// (openapi.yaml, embedded) and the tools built on it: the document as JSON
// (Document), parsed (Load), served at GET /openapi.json (Handler), and
// validation of requests and responses against it (ValidateRequest,
// ValidateResponse) for tests and for checking a live API.
//
// The document is the source of truth for clients; it agrees with
// shared/API.md, and the package's end-to-end test checks that what the
// running server accepts and answers matches it.
package openapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"go.yaml.in/yaml/v4"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

//go:embed openapi.yaml
var source []byte

// converted is the embedded YAML as JSON, converted once.
var converted = sync.OnceValues(func() ([]byte, error) {
	b, err := yamlToJSON(source)
	if err != nil {
		return nil, fmt.Errorf("openapi: embedded openapi.yaml: %w", err)
	}
	return b, nil
})

// Document returns the OpenAPI document as JSON, converted once from the
// embedded YAML with its keys in the order written. The caller must not
// modify the returned slice. It panics if the embedded YAML is malformed,
// which the package's tests rule out.
func Document() []byte {
	b, err := converted()
	if err != nil {
		panic(err)
	}
	return b
}

// etag is the strong entity tag of Document.
var etag = sync.OnceValue(func() string {
	sum := sha256.Sum256(Document())
	return `"` + hex.EncodeToString(sum[:16]) + `"`
})

// Load parses and validates the document (as OpenAPI 3.1, JSON Schema
// 2020-12), with every $ref resolved. Each call returns a new *openapi3.T
// that the caller may modify.
func Load(ctx context.Context) (*openapi3.T, error) {
	b, err := converted()
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("openapi: load: %w", err)
	}
	if err := doc.Validate(ctx, openapi3.IsOpenAPI31OrLater()); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	return doc, nil
}

// Handler serves the document as JSON; mount it at GET /openapi.json. It
// answers GET and HEAD (others get 405 problem+json) with an ETag and
// Cache-Control, and 304 to a matching If-None-Match.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpapi.Error(w, r, errs.E(errs.MethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
			return
		}
		tag := etag()
		h := w.Header()
		h.Set("ETag", tag)
		h.Set("Cache-Control", "public, max-age=300")
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		doc := Document()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(doc)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(doc)
		}
	})
}

// etagMatches reports whether an If-None-Match header value matches tag,
// by weak comparison (RFC 9110, section 13.1.2).
func etagMatches(header, tag string) bool {
	for c := range strings.SplitSeq(header, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.TrimPrefix(c, "W/") == tag {
			return true
		}
	}
	return false
}

// validator is the parsed document and its router, built once.
type validator struct {
	router  routers.Router
	options *openapi3filter.Options
}

var theValidator = sync.OnceValues(func() (*validator, error) {
	doc, err := Load(context.Background())
	if err != nil {
		return nil, err
	}
	// Match requests by path alone, whatever host they were sent to: the
	// servers listed in the document are examples, not the only places
	// the API runs.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: router: %w", err)
	}
	return &validator{router: router, options: &openapi3filter.Options{
		MultiError: true,
		// A status the operation does not list is a mismatch.
		IncludeResponseStatus: true,
		// Defaults are not written into the request body.
		SkipSettingDefaults: true,
		// Tokens are the gateway's business; the document only says
		// which operations need one.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
	}}, nil
})

// route finds req's operation.
func (v *validator) route(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil, nil, fmt.Errorf("openapi: %s %s: %w", req.Method, req.URL.Path, err)
	}
	return route, params, nil
}

// ValidateRequest checks req (method, path, parameters, headers and body)
// against the document; a request the document does not describe is an
// error that wraps routers.ErrPathNotFound or routers.ErrMethodNotAllowed.
// Authentication is not checked. The body is read and put back, so req
// can still be sent or served.
func ValidateRequest(ctx context.Context, req *http.Request) error {
	v, err := theValidator()
	if err != nil {
		return err
	}
	route, params, err := v.route(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route, Options: v.options,
	})
}

// ValidateResponse checks a response to req — its status (which the
// operation must list, or cover with its default response), headers and
// body — against the document. req's body is not read.
func ValidateResponse(ctx context.Context, req *http.Request, status int, header http.Header, body []byte) error {
	v, err := theValidator()
	if err != nil {
		return err
	}
	route, params, err := v.route(req)
	if err != nil {
		return err
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route, Options: v.options,
		},
		Status:  status,
		Header:  header,
		Options: v.options,
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(ctx, in)
}

// yamlToJSON converts a YAML document to compact JSON, keeping the order
// of mapping keys. Anchors and aliases are expanded; merge keys, non-string
// keys that are not scalars, and non-finite numbers are errors.
func yamlToJSON(src []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, &root, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxDepth bounds alias expansion and nesting.
const maxDepth = 200

func writeJSON(buf *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > maxDepth {
		return errors.New("yaml nested too deeply")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("want exactly one YAML document")
		}
		return writeJSON(buf, n.Content[0], depth+1)
	case yaml.AliasNode:
		return writeJSON(buf, n.Alias, depth+1)
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
			}
			if k.Tag == "!!merge" {
				return fmt.Errorf("line %d: merge keys (<<) are not supported", k.Line)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k.Value)
			buf.WriteByte(':')
			if err := writeJSON(buf, v, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, c, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		return writeScalar(buf, n)
	}
	return fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
}

func writeScalar(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!null":
		buf.WriteString("null")
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.WriteString(strconv.FormatBool(b))
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.WriteString(strconv.FormatInt(i, 10))
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("line %d: %s has no JSON form", n.Line, n.Value)
		}
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default: // !!str, !!timestamp, !!binary and custom tags stay text
		writeString(buf, n.Value)
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode's newline
}
