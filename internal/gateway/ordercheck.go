package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/agora-commerce/agora/internal/gateway/edge"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// The order check: before POST /api/v1/orders reaches ordering, the
// gateway asks the catalog for each product and the inventory for its
// stock, all in parallel.
//
//   - A product the catalog does not know refuses the order with 422
//     (unknown_product, the offending items[i].product_id listed) — the
//     answer ordering would give, without the trip.
//   - Stock is advisory. An order asking for more than is available now
//     is still placed: the checkout saga reserves, and an order it cannot
//     hold ends Cancelled with reason out_of_stock, as the API promises.
//     The 202 then carries "warnings" naming the short lines, so a client
//     can tell the customer at once.
//   - A check that fails or is slow (catalog or inventory down, breaker
//     open, past checkTimeout) is skipped: ordering still validates the
//     products, and the saga still holds the stock.
const (
	// checkTimeout bounds the whole check.
	checkTimeout = 500 * time.Millisecond
	// checkParallel caps the lookups in flight for one order.
	checkParallel = 8
)

// orderLine is what the check reads of a placement.
type orderLine struct {
	ProductID string          `json:"product_id"`
	Quantity  json.RawMessage `json:"quantity"`
}

// lineCheck is what the lookups said of one product.
type lineCheck struct {
	unknown   bool  // the catalog answered 404
	available int64 // units available now
	stockKnew bool  // the inventory answered
}

// orderCheck wraps next (the proxy to ordering) with the order check.
func (g *Gateway) orderCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := edge.Body(w, r, httpapi.MaxBodyBytes) // read once, by BodyLimit
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		var req struct {
			Items []orderLine `json:"items"`
		}
		if json.Unmarshal(body, &req) != nil || len(req.Items) == 0 {
			next.ServeHTTP(w, r) // ordering explains what is wrong
			return
		}
		want := map[string]int64{}
		for _, it := range req.Items {
			q, err := strconv.ParseInt(string(it.Quantity), 10, 64)
			if it.ProductID == "" || err != nil || q <= 0 {
				next.ServeHTTP(w, r)
				return
			}
			want[it.ProductID] += q
		}
		if len(want) > inventoryapi.MaxLevels { // passed on unchecked: ordering validates it whole
			next.ServeHTTP(w, r)
			return
		}
		checks := g.lookUp(r.Context(), want)
		var unknown, short []errs.FieldError
		for i, it := range req.Items {
			c, ok := checks[it.ProductID]
			switch {
			case !ok:
			case c.unknown:
				unknown = append(unknown, errs.FieldError{Field: "items[" + strconv.Itoa(i) + "].product_id", Message: "is not a product in the catalog"})
			case c.stockKnew && want[it.ProductID] > c.available:
				short = append(short, errs.FieldError{Field: "items[" + strconv.Itoa(i) + "].quantity",
					Message: "only " + strconv.FormatInt(max(c.available, 0), 10) + " available now; the checkout decides"})
			}
		}
		if len(unknown) > 0 {
			httpapi.Error(w, r, &errs.Error{Code: errs.Unprocessable, Reason: "unknown_product", Message: "the order names products that do not exist", Fields: unknown})
			return
		}
		if len(short) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}}
		next.ServeHTTP(rec, r)
		writeWithWarnings(w, rec, short)
	})
}

// lookUp asks the catalog about every product of want (in parallel) and
// the inventory about all of them (one call, alongside), within
// checkTimeout. A product missing from the result was not checked.
func (g *Gateway) lookUp(ctx context.Context, want map[string]int64) map[string]lineCheck {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var mu sync.Mutex
	out := map[string]lineCheck{}
	var eg errgroup.Group
	eg.SetLimit(checkParallel)
	q := url.Values{}
	for id := range want {
		q.Add("product_id", id)
	}
	eg.Go(func() error {
		var lv inventoryapi.Levels
		if status, _ := g.internalGet(ctx, "inventory", inventoryapi.LevelsPath+"?"+q.Encode(), &lv); status != http.StatusOK {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lv.Items {
			if _, asked := want[l.ProductID]; !asked {
				continue
			}
			c := out[l.ProductID]
			c.available, c.stockKnew = l.Available, true
			out[l.ProductID] = c
		}
		return nil
	})
	for id := range want {
		eg.Go(func() error {
			if status, _ := g.internalGet(ctx, "catalog", "/api/v1/products/"+url.PathEscape(id), nil); status == http.StatusNotFound {
				mu.Lock()
				c := out[id]
				c.unknown = true
				out[id] = c
				mu.Unlock()
			}
			return nil
		})
	}
	_ = eg.Wait()
	return out
}

// internalGet sends a GET through cluster's policies and balancer and
// decodes a 200's JSON body into v (if not nil). It returns the status,
// or 0 when the call failed.
func (g *Gateway) internalGet(ctx context.Context, cluster, path string, v any) (int, error) {
	c := g.clusters[cluster]
	if c == nil {
		return 0, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cluster+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(v); err != nil {
			return 0, err
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, nil
}

// recorder keeps an answer so warnings can be added to it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// writeWithWarnings writes rec to w, with "warnings" added to an
// accepted placement's JSON body.
func writeWithWarnings(w http.ResponseWriter, rec *recorder, warnings []errs.FieldError) {
	body := rec.body.Bytes()
	if rec.status == http.StatusAccepted {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			if b, err := json.Marshal(warnings); err == nil {
				m["warnings"] = b
				if nb, err := json.Marshal(m); err == nil {
					body = append(nb, '\n')
				}
			}
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}
