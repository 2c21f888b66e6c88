package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Sessions serves browser sessions over api, the gateway: POST
// /api/v1/auth/session logs in with identity's token endpoint (the same
// body, the same problems and limits) and answers with the session
// cookies instead of the token, which no script can read; DELETE ends
// the session (200 {status: logged_out}), revoking its token through
// identity's logout so that a copied cookie is worthless too. The answer to a login is {csrf_token, expires_in}: the
// token unsafe requests carry in X-CSRF-Token (also in the readable
// agora_csrf cookie, for a page loaded later).
func Sessions(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/session", func(w http.ResponseWriter, r *http.Request) { login(api, w, r) })
	mux.HandleFunc("DELETE /api/v1/auth/session", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(auth.SessionCookie); err == nil && c.Value != "" {
			// Best effort: an expired or already revoked token is
			// refused, and the cookies go all the same.
			out, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "/api/v1/auth/logout", nil)
			if err == nil {
				out.RemoteAddr = r.RemoteAddr
				out.Header.Set("Authorization", "Bearer "+c.Value)
				for _, h := range []string{"X-Forwarded-For", "User-Agent", "traceparent", httpapi.RequestIDHeader} {
					if v := r.Header.Get(h); v != "" {
						out.Header.Set(h, v)
					}
				}
				api.ServeHTTP(&recorder{header: http.Header{}, status: http.StatusOK}, out)
			}
		}
		auth.ClearSession(w, r)
		httpapi.JSON(w, http.StatusOK, map[string]string{"status": "logged_out"})
	})
	return mux
}

func login(api http.Handler, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		httpapi.Error(w, r, &errs.Error{Code: errs.TooLarge, Reason: "body_too_large", Message: "the request body is too large"})
		return
	}
	in, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "/api/v1/auth/token", bytes.NewReader(body))
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	in.RemoteAddr = r.RemoteAddr
	// The login is one request: the inner one carries its ID.
	if id := w.Header().Get(httpapi.RequestIDHeader); id != "" {
		in.Header.Set(httpapi.RequestIDHeader, id)
	}
	for _, h := range []string{"Content-Type", "X-Forwarded-For", "User-Agent", "traceparent", "Idempotency-Key"} {
		if v := r.Header.Get(h); v != "" {
			in.Header.Set(h, v)
		}
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	api.ServeHTTP(rec, in)
	if rec.status != http.StatusOK {
		// Identity's problem (bad credentials, field errors, 429) as is.
		for _, h := range []string{"Content-Type", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "WWW-Authenticate"} {
			if v := rec.header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		body := rec.body.Bytes()
		var p map[string]any
		if json.Unmarshal(body, &p) == nil && p["instance"] != nil {
			p["instance"] = r.URL.Path // the problem is this request's
			if b, err := json.Marshal(p); err == nil {
				body = b
			}
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(body)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		httpapi.Error(w, r, &errs.Error{Code: errs.Unavailable, Reason: "bad_token_answer", Message: "identity's answer held no token"})
		return
	}
	auth.SetSession(w, r, tok.AccessToken, time.Duration(tok.ExpiresIn)*time.Second)
	w.Header().Set("Cache-Control", "no-store")
	httpapi.JSON(w, http.StatusOK, map[string]any{"csrf_token": auth.CSRFToken(tok.AccessToken), "expires_in": tok.ExpiresIn})
}

// recorder keeps the inner login's answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
