// Package api is the identity context's HTTP interface: tokens,
// customer registration, the caller's own profile and the JWKS document
// other services verify tokens with.
package api

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Options tune the handlers.
type Options struct {
	// ProxyHops is how many trusted reverse proxies (e.g. the gateway)
	// stand in front of this service. 0, the default, takes the client's
	// address for the audit log from the connection; n > 0 trusts
	// X-Forwarded-For and takes the address the n-th proxy from the end
	// appended, which a client cannot forge.
	ProxyHops int
}

// Handler serves the identity API.
type Handler struct {
	svc      *app.Service
	signer   *auth.Signer
	verifier *auth.Verifier
	opts     Options
}

// New returns the identity API on svc, publishing signer's keys and
// checking bearer tokens with verifier.
func New(svc *app.Service, signer *auth.Signer, verifier *auth.Verifier, opts Options) *Handler {
	return &Handler{svc: svc, signer: signer, verifier: verifier, opts: opts}
}

// Register adds the identity routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/auth/token", h.token)
	mux.HandleFunc("POST /api/v1/auth/refresh", h.refresh)
	mux.Handle("POST /api/v1/auth/logout", h.verifier.Middleware(http.HandlerFunc(h.logout)))
	mux.HandleFunc("POST /api/v1/customers", h.register)
	mux.Handle("GET /api/v1/me", h.verifier.Middleware(http.HandlerFunc(h.me)))
	mux.Handle("GET /.well-known/jwks.json", h.signer.JWKSHandler())
}

type tokenRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Tenant   string `json:"tenant"`
}

type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	RefreshExpiresIn int64  `json:"refresh_expires_in,omitempty"`
}

func newTokenResponse(t app.Token) tokenResponse {
	return tokenResponse{AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: int64(t.ExpiresIn.Seconds()),
		RefreshToken: t.RefreshToken, RefreshExpiresIn: int64(t.RefreshExpiresIn.Seconds())}
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h *Handler) refresh(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var req refreshRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if req.RefreshToken == "" {
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "refresh_token", Message: "is required"}))
		return
	}
	tok, err := h.svc.Refresh(h.withOrigin(w, r), req.RefreshToken)
	if err != nil {
		auth.Challenge(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, newTokenResponse(tok))
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	// Logout takes no body (an empty JSON object at most), like every
	// other write without one.
	if err := httpapi.EmptyBody(w, r); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	c, _ := auth.ClaimsFrom(r.Context())
	n, err := h.svc.Logout(h.withOrigin(w, r), c)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, map[string]any{"logged_out": true, "refresh_tokens_revoked": n})
}

func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var req tokenRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var bad []errs.FieldError
	if req.Email == "" {
		bad = append(bad, errs.FieldError{Field: "email", Message: "is required"})
	}
	if req.Password == "" {
		bad = append(bad, errs.FieldError{Field: "password", Message: "is required"})
	}
	if len(bad) > 0 {
		httpapi.Error(w, r, errs.Fields(bad...))
		return
	}
	tok, err := h.svc.Login(h.withOrigin(w, r), req.Tenant, req.Email, req.Password)
	if err != nil {
		auth.Challenge(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, newTokenResponse(tok))
}

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Tenant   string `json:"tenant"`
}

type registerResponse struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	AccountID string `json:"account_id"`
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	u, err := h.svc.Register(h.withOrigin(w, r), req.Tenant, req.Email, req.Password, req.Name)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusCreated, registerResponse{ID: u.ID, Email: u.Email, AccountID: u.AccountID})
}

// User is the caller's profile as GET /api/v1/me shows it.
type User struct {
	// ID is the user's ID.
	ID string `json:"id"`
	// Email is the user's email address.
	Email string `json:"email"`
	// Name is the user's display name.
	Name string `json:"name"`
	// Tenant is the user's tenant.
	Tenant string `json:"tenant"`
	// Roles are the user's roles.
	Roles []string `json:"roles"`
	// AccountID is the user's payments account, if any.
	AccountID string `json:"account_id,omitempty"`
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.ClaimsFrom(r.Context())
	u, err := h.svc.Get(r.Context(), c.UserID())
	if err == nil && u.Tenant != c.Tenant {
		err = identity.ErrUserNotFound
	}
	if err != nil {
		if errs.CodeOf(err) == errs.NotFound {
			// A valid token for a user that is gone.
			err = &errs.Error{Code: errs.Unauthenticated, Reason: auth.ErrInvalidToken.Reason, Message: "the token's user no longer exists", Err: err}
		}
		auth.Challenge(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.JSON(w, http.StatusOK, User{ID: u.ID, Email: u.Email, Name: u.Name, Tenant: u.Tenant,
		Roles: identity.RoleNames(u.Roles), AccountID: u.AccountID})
}

// withOrigin returns r's context carrying where r came from, for the
// audit log.
func (h *Handler) withOrigin(w http.ResponseWriter, r *http.Request) context.Context {
	rid := w.Header().Get(httpapi.RequestIDHeader)
	if rid == "" {
		rid = r.Header.Get(httpapi.RequestIDHeader)
	}
	o := identity.Origin{Addr: ClientAddr(r, h.opts.ProxyHops), UserAgent: r.UserAgent(), RequestID: rid,
		TraceParent: r.Header.Get(httpapi.TraceParentHeader)}
	if c, ok := auth.ClaimsFrom(r.Context()); ok {
		o.Actor = c.UserID()
	}
	return identity.WithOrigin(r.Context(), o)
}

// ClientAddr returns the client's IP address: from r.RemoteAddr when
// proxyHops is 0, else the proxyHops-th address from the end of
// X-Forwarded-For (the one the outermost trusted proxy saw), falling back
// to r.RemoteAddr when that is missing or not an IP address.
func ClientAddr(r *http.Request, proxyHops int) string {
	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	if proxyHops <= 0 {
		return remote
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	if len(hops) < proxyHops {
		return remote
	}
	addr, err := netip.ParseAddr(hops[len(hops)-proxyHops])
	if err != nil {
		return remote
	}
	return addr.String()
}
