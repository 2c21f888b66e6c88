// Package bff holds Agora's backends-for-frontends: /bff/web/home and
// /bff/mobile/home compose one page from several bounded contexts — the
// caller (identity), recommendations (what sells, from a popularity
// counter, with the catalog's details) and recent orders (ordering) —
// fetched in parallel, each with its own deadline. A section whose
// backend fails or is slow is left empty and named in the page's
// `degraded` list; the page still answers 200. The web page carries full
// records, the mobile page trimmed ones and fewer of them.
package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Resolver returns the base URL ("http://host:port") of an instance of
// cluster.
type Resolver func(cluster string) (string, error)

// Popular says what sells: the IDs of the n best-selling products.
type Popular interface {
	Top(ctx context.Context, n int) ([]string, error)
}

// Options configure a Handler.
type Options struct {
	// SectionTimeout bounds each section (default 500ms).
	SectionTimeout time.Duration
	// Client carries the backend calls (default: a client with keep-alive).
	Client *http.Client
}

// Handler serves the BFF pages.
type Handler struct {
	resolve Resolver
	popular Popular
	opts    Options
}

// New returns the BFF on the given backends.
func New(resolve Resolver, popular Popular, opts Options) *Handler {
	if opts.SectionTimeout <= 0 {
		opts.SectionTimeout = 500 * time.Millisecond
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	}
	return &Handler{resolve: resolve, popular: popular, opts: opts}
}

// Register adds the BFF routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /bff/web/home", h.page(web))
	mux.HandleFunc("GET /bff/mobile/home", h.page(mobile))
}

// A shape is what one client gets.
type shape struct {
	recommendations, orders int
	user                    func(map[string]any) any
	product                 func(map[string]any) any
	order                   func(map[string]any) any
}

var (
	full = func(m map[string]any) any { return m }
	web  = shape{recommendations: 10, orders: 5, user: full, product: full, order: full}
	// The mobile page: fewer records, and of each only what a small
	// screen shows.
	mobile = shape{recommendations: 5, orders: 3,
		user:    pick("id", "name"),
		product: pick("id", "name", "price"),
		order:   pick("id", "status", "total", "created_at"),
	}
)

func pick(keys ...string) func(map[string]any) any {
	return func(m map[string]any) any {
		out := make(map[string]any, len(keys))
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
}

// Page is a home page.
type Page struct {
	User            any      `json:"user"`
	Recommendations []any    `json:"recommendations"`
	RecentOrders    []any    `json:"recent_orders"`
	Degraded        []string `json:"degraded"`
}

func (h *Handler) page(s shape) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Caller(r); err != nil {
			auth.Challenge(w, r, err)
			return
		}
		authz := r.Header.Get("Authorization")
		p := Page{Recommendations: []any{}, RecentOrders: []any{}, Degraded: []string{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		section := func(name string, f func(ctx context.Context) error) {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), h.opts.SectionTimeout)
				defer cancel()
				if err := f(ctx); err != nil {
					mu.Lock()
					p.Degraded = append(p.Degraded, name)
					mu.Unlock()
				}
			})
		}
		section("user", func(ctx context.Context) error {
			var me map[string]any
			if err := h.get(ctx, "identity", "/api/v1/me", authz, &me); err != nil {
				return err
			}
			mu.Lock()
			p.User = s.user(me)
			mu.Unlock()
			return nil
		})
		section("recent_orders", func(ctx context.Context) error {
			var page struct {
				Items []map[string]any `json:"items"`
			}
			if err := h.get(ctx, "ordering", fmt.Sprintf("/api/v1/orders?order=newest&limit=%d", s.orders), authz, &page); err != nil {
				return err
			}
			out := make([]any, 0, s.orders)
			for _, o := range page.Items {
				out = append(out, s.order(o))
			}
			mu.Lock()
			p.RecentOrders = out
			mu.Unlock()
			return nil
		})
		section("recommendations", func(ctx context.Context) error {
			out, err := h.recommendations(ctx, s)
			if err != nil {
				return err
			}
			mu.Lock()
			p.Recommendations = out
			mu.Unlock()
			return nil
		})
		wg.Wait()
		slices.Sort(p.Degraded)
		httpapi.JSON(w, http.StatusOK, p)
	}
}

// recommendations are the best sellers with the catalog's details, then,
// while fewer than the page shows have sold, the catalog's first products.
func (h *Handler) recommendations(ctx context.Context, s shape) ([]any, error) {
	ids, err := h.popular.Top(ctx, s.recommendations)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, s.recommendations)
	seen := make(map[string]bool, s.recommendations)
	products := make([]map[string]any, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			errs[i] = h.get(ctx, "catalog", "/api/v1/products/"+url.PathEscape(id), "", &products[i])
		})
	}
	wg.Wait()
	for i, p := range products {
		var he *httpError
		switch {
		case errs[i] == nil:
			out = append(out, s.product(p))
			seen[ids[i]] = true
		case errors.As(errs[i], &he) && he.status == http.StatusNotFound:
			// A product removed since it sold: skip it.
		default:
			return nil, errs[i]
		}
	}
	if len(out) < s.recommendations {
		var page struct {
			Items []map[string]any `json:"items"`
		}
		if err := h.get(ctx, "catalog", fmt.Sprintf("/api/v1/products?limit=%d", 2*s.recommendations), "", &page); err != nil {
			return nil, err
		}
		for _, p := range page.Items {
			if id, _ := p["id"].(string); !seen[id] && len(out) < s.recommendations {
				out = append(out, s.product(p))
			}
		}
	}
	return out, nil
}

type httpError struct{ status int }

func (e *httpError) Error() string { return fmt.Sprintf("bff: backend answered %d", e.status) }

// get fetches path from an instance of cluster, as the caller.
func (h *Handler) get(ctx context.Context, cluster, path, authz string, out any) error {
	base, err := h.resolve(cluster)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := h.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return &httpError{status: res.StatusCode}
	}
	return json.NewDecoder(io.LimitReader(res.Body, 4<<20)).Decode(out)
}
