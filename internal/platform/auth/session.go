package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
)

// Browser sessions. A browser logs in once (POST /api/v1/auth/session)
// and from then on carries its access token in an HttpOnly cookie that
// scripts cannot read, sent only to this site (SameSite=Strict). A
// request that changes something (any method but GET, HEAD and OPTIONS)
// authenticated by that cookie must also carry the session's CSRF token
// in the X-CSRF-Token header: the token is derived from the session, so
// only a page that can read the readable CSRF cookie — a page of this
// origin — can send it (a signed double-submit cookie, OWASP's
// recommended pattern).
const (
	// SessionCookie holds the access token (HttpOnly).
	SessionCookie = "agora_session"
	// CSRFCookie holds the session's CSRF token, readable by the site's
	// own scripts.
	CSRFCookie = "agora_csrf"
	// CSRFHeader carries the CSRF token on unsafe requests.
	CSRFHeader = "X-CSRF-Token"
)

// ErrCSRF answers a cookie-authenticated unsafe request without the
// session's CSRF token.
var ErrCSRF = &errs.Error{Code: errs.Forbidden, Reason: "csrf_token_invalid",
	Message: "a request authenticated by the session cookie must send the session's CSRF token in the X-CSRF-Token header"}

// CSRFToken is the CSRF token of the session whose access token is
// token: a hash of it, which nobody without the token can compute.
func CSRFToken(token string) string {
	sum := sha256.Sum256([]byte("agora-csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SessionFrom returns the access token of r's session cookie, or
// ErrNoToken. For an unsafe method it requires the session's CSRF token
// in the X-CSRF-Token header (else ErrCSRF).
func SessionFrom(r *http.Request) (string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", ErrNoToken
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		want := CSRFToken(c.Value)
		got := r.Header.Get(CSRFHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return "", ErrCSRF
		}
	}
	return c.Value, nil
}

// SetSession makes w's response log the browser in with access token
// token for ttl: the HttpOnly session cookie and the readable CSRF
// cookie, both SameSite=Strict, Secure when the request came over TLS.
func SetSession(w http.ResponseWriter, r *http.Request, token string, ttl time.Duration) {
	secure := r.TLS != nil
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: CSRFToken(token), Path: "/", MaxAge: int(ttl / time.Second),
		Secure: secure, SameSite: http.SameSiteStrictMode})
}

// ClearSession makes w's response log the browser out: both cookies
// expire.
func ClearSession(w http.ResponseWriter, r *http.Request) {
	secure := r.TLS != nil
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: name == SessionCookie, Secure: secure, SameSite: http.SameSiteStrictMode})
	}
}
