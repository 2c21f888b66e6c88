// Package web is Agora's browser front end: a storefront for customers
// and an operations console for admins and merchants, written as plain
// ES modules with no build step, vendored and embedded in the binary
// (go:embed), served by the gateway at / with a strict
// Content-Security-Policy. Everything it shows comes from the public and
// ops endpoints of the API (the OpenAPI document), over a browser session
// (package auth's session cookie and CSRF token, set by Sessions).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every page and asset: scripts,
// styles and connections only from this origin, no inline script or
// style element, no plugins, no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body []byte
	etag string
	kind string
}

// Handler serves the front end: GET / (the single page; the app routes
// with the URL's fragment) and GET /assets/... (its modules, styles and
// vendored libraries). Any other path is a 404 problem. Assets are
// revalidated by ETag on every load, so a new binary's assets show at
// once.
func Handler() http.Handler {
	assets := map[string]asset{}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		kind := mime.TypeByExtension(path.Ext(p))
		if kind == "" {
			kind = "application/octet-stream"
		}
		assets[p] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, kind: kind}
		return nil
	})
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, r *http.Request, name string) {
		a, ok := assets[name]
		if !ok {
			httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "no_route", Message: "no such path"})
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.kind)
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, r, "index.html") })
	mux.HandleFunc("GET /assets/{file...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if name == "index.html" || strings.Contains(name, "..") {
			name = "" // one way to the page
		}
		serve(w, r, name)
	})
	return mux
}
