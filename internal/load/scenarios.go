package load

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// followTimeout bounds how long an order or a transfer is followed: one
// still not ended then is an error (stuck), unless the run was cut first.
const followTimeout = 60 * time.Second

// overdrawMargin is added to what the second account is known to hold
// when an order or a transfer is made to overdraw it: more than any one
// transfer moves, so that a transfer whose end went unseen cannot make an
// overdraft succeed.
const overdrawMargin = 10_000

// run runs one scenario as u. Its requests are counted as they are
// answered; a failed step ends the scenario.
func (u *vu) run(ctx context.Context, cfg Config, c *client, cat *catalog, scenario string) {
	if err := u.renew(ctx, c, cfg.Tenant); err != nil {
		if ctx.Err() == nil {
			c.st.record(scenario, Failed, 0, time.Now(), 0, "renewing the token: "+err.Error())
		}
		return
	}
	switch scenario {
	case Browse:
		u.browse(ctx, c, cat)
	case Product:
		u.product(ctx, c, cat)
	case Order:
		u.order(ctx, c, cat, u.second != "" && u.rng.Float64() < cfg.Refusals)
	case Check:
		u.check(ctx, c)
	case Transfer:
		u.transfer(ctx, c, cat, u.second != "" && u.rng.Float64() < cfg.Refusals)
	}
}

func (u *vu) get(ctx context.Context, c *client, scenario, path, route string, out any) error {
	_, err := c.do(ctx, call{scenario: scenario, method: "GET", path: path, route: route, token: u.tok.access, want: []int{200}, out: out})
	return err
}

// browse: the web home page now and then, a page of products, maybe the
// next pages, maybe a search for a word of a product's name.
func (u *vu) browse(ctx context.Context, c *client, cat *catalog) {
	if u.rng.IntN(4) == 0 {
		if u.get(ctx, c, Browse, "/bff/web/home", "GET /bff/web/home", nil) != nil {
			return
		}
	}
	var page struct {
		Items      []product `json:"items"`
		NextCursor string    `json:"next_cursor"`
	}
	path, route := "/api/v1/products?limit=20", "GET /api/v1/products"
	if u.rng.IntN(3) == 0 {
		words := strings.Fields(cat.products[u.rng.IntN(len(cat.products))].Name)
		q := strings.ToLower(strings.Trim(words[u.rng.IntN(len(words))], ",.()"))
		path, route = "/api/v1/products?limit=20&q="+url.QueryEscape(q), "GET /api/v1/products?q="
	}
	for pages := 1 + u.rng.IntN(3); pages > 0; pages-- {
		if u.get(ctx, c, Browse, path, route, &page) != nil || page.NextCursor == "" {
			return
		}
		path = "/api/v1/products?limit=20&cursor=" + url.QueryEscape(page.NextCursor)
		route = "GET /api/v1/products?cursor="
	}
}

// product: one product and its availability.
func (u *vu) product(ctx context.Context, c *client, cat *catalog) {
	id := url.PathEscape(cat.products[u.rng.IntN(len(cat.products))].ID)
	if u.get(ctx, c, Product, "/api/v1/products/"+id, "GET /api/v1/products/{id}", nil) != nil {
		return
	}
	_ = u.get(ctx, c, Product, "/api/v1/inventory/"+id, "GET /api/v1/inventory/{id}", nil)
}

// check: the user's latest orders, one of them, and the balance.
func (u *vu) check(ctx context.Context, c *client) {
	if u.get(ctx, c, Check, "/api/v1/orders?limit=10", "GET /api/v1/orders", nil) != nil {
		return
	}
	if len(u.orders) > 0 {
		id := u.orders[u.rng.IntN(len(u.orders))]
		if u.get(ctx, c, Check, "/api/v1/orders/"+url.PathEscape(id), "GET /api/v1/orders/{id}", nil) != nil {
			return
		}
	}
	_ = u.get(ctx, c, Check, "/api/v1/accounts/"+url.PathEscape(u.account), "GET /api/v1/accounts/{id}", nil)
}

var shipTo = map[string]string{"street": "1 Load St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}

// order places an order with an Idempotency-Key and follows it to its
// end. overdraw pays it from the second account, with more than that
// account holds: it must end Cancelled (insufficient_funds, or
// out_of_stock when the stock runs out first), an expected refusal.
func (u *vu) order(ctx context.Context, c *client, cat *catalog, overdraw bool) {
	type item struct {
		ProductID string `json:"product_id"`
		Quantity  int64  `json:"quantity"`
	}
	var items []item
	payFrom := u.account
	var total int64
	if overdraw {
		// The dearest product, enough of it to cost more than the
		// second account holds.
		p := slices.MaxFunc(cat.products, func(a, b product) int { return cmp.Compare(a.Price.Amount, b.Price.Amount) })
		q := (u.inSecond+overdrawMargin)/p.Price.Amount + 1
		items, payFrom, total = []item{{p.ID, q}}, u.second, q*p.Price.Amount
	} else {
		for range 1 + u.rng.IntN(2) {
			p := cat.products[u.rng.IntN(len(cat.products))]
			if slices.ContainsFunc(items, func(it item) bool { return it.ProductID == p.ID }) {
				continue
			}
			q := int64(1 + u.rng.IntN(3))
			items = append(items, item{p.ID, q})
			total += q * p.Price.Amount
		}
		if u.spent+total > Funds {
			// A very long run: top the account up first.
			if _, err := c.do(ctx, call{scenario: Order, method: "POST", path: "/api/v1/accounts/" + url.PathEscape(u.account) + "/deposits",
				route: "POST /api/v1/accounts/{id}/deposits", token: u.tok.access, idemKey: uuid.NewString(),
				body: map[string]any{"amount": Money{Funds, cat.currency}}, want: []int{200, 201}}); err != nil {
				return
			}
			u.spent = 0
		}
	}
	var placed struct {
		ID string `json:"id"`
	}
	k := call{scenario: Order, method: "POST", path: "/api/v1/orders", route: "POST /api/v1/orders", token: u.tok.access,
		idemKey: uuid.NewString(), want: []int{202}, out: &placed,
		body: map[string]any{"items": items, "shipping_address": shipTo, "payment_account_id": payFrom}}
	if overdraw {
		k.refuse = []int{409}
	}
	a, err := c.do(ctx, k)
	if err != nil || a.status != 202 {
		return
	}
	submitted := a.sent
	c.st.orderPlaced()
	u.orders = append(u.orders, placed.ID)
	if len(u.orders) > 20 {
		u.orders = u.orders[1:]
	}
	status, reason := u.followOrder(ctx, c, placed.ID, func(status, reason string) (Outcome, string) {
		switch {
		case overdraw && status == "Confirmed":
			return Failed, "an order over the paying account's balance was confirmed"
		case overdraw && (reason == "insufficient_funds" || reason == "out_of_stock"):
			return Refused, ""
		case !overdraw && (status == "Confirmed" || reason == "out_of_stock"):
			return OK, ""
		}
		return Failed, "order cancelled: " + reason
	})
	c.st.orderEnded(status, reason, time.Since(submitted))
	if status == "Confirmed" {
		u.spent += total
	}
}

// orderView is the part of an order the follower reads.
type orderView struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

func terminal(status string) bool { return status == "Confirmed" || status == "Cancelled" }

// followOrder follows an order's live updates (GET
// /api/v1/orders/{id}/updates, server-sent events) until it ends, and
// counts that request — its latency is until its headers — with the
// outcome judge gives the end. A stream that closes early is followed by
// polling. It returns "" when the order was not seen to end.
func (u *vu) followOrder(ctx context.Context, c *client, id string, judge func(status, reason string) (Outcome, string)) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, followTimeout)
	defer cancel()
	const route = "GET /api/v1/orders/{id}/updates"
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/orders/"+url.PathEscape(id)+"/updates", nil)
		if err != nil {
			return "", ""
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+u.tok.access)
		start := time.Now()
		res, err := c.http.Do(req)
		latency := time.Since(start)
		if err != nil {
			u.cut(ctx, c, start, latency, 0, fmt.Sprintf("%s: %s", route, transportError(err)))
			return "", ""
		}
		if res.StatusCode == http.StatusTooManyRequests {
			res.Body.Close()
			c.st.record(Order, Throttled, res.StatusCode, start, latency, "")
			select {
			case <-ctx.Done():
			case <-time.After(retryAfter(res.Header.Get("Retry-After"))):
			}
			continue
		}
		if res.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
			res.Body.Close()
			u.cut(ctx, c, start, latency, res.StatusCode, fmt.Sprintf("%s: %d%s", route, res.StatusCode, problemSummary(raw)))
			return "", ""
		}
		v := readUntilTerminal(res.Body)
		res.Body.Close()
		if !terminal(v.Status) {
			if ctx.Err() != nil {
				break
			}
			// The stream closed before the end: poll instead.
			if v = u.pollOrder(ctx, c, id); !terminal(v.Status) {
				break
			}
		}
		o, msg := judge(v.Status, v.Reason)
		if msg != "" {
			msg = fmt.Sprintf("%s: %s", route, msg)
		}
		c.st.record(Order, o, http.StatusOK, start, latency, msg)
		return v.Status, v.Reason
	}
	if ctx.Err() == context.DeadlineExceeded {
		c.st.record(Order, Failed, 0, time.Now(), 0, fmt.Sprintf("an order not ended after %s", followTimeout))
	}
	return "", ""
}

// cut counts a follow request that failed, unless the run cut it.
func (u *vu) cut(ctx context.Context, c *client, start time.Time, latency time.Duration, code int, msg string) {
	if ctx.Err() == nil {
		c.st.record(Order, Failed, code, start, latency, msg)
	}
}

// readUntilTerminal reads order events until one is terminal or the
// stream ends, and returns the last.
func readUntilTerminal(r io.Reader) orderView {
	var v orderView
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var next orderView
		if json.Unmarshal([]byte(strings.TrimSpace(data)), &next) == nil && next.Status != "" {
			v = next
			if terminal(v.Status) {
				return v
			}
		}
	}
	return v
}

// pollOrder reads the order until it ends (or ctx does).
func (u *vu) pollOrder(ctx context.Context, c *client, id string) orderView {
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		var v orderView
		if u.get(ctx, c, Order, "/api/v1/orders/"+url.PathEscape(id), "GET /api/v1/orders/{id}", &v) != nil || terminal(v.Status) {
			return v
		}
		select {
		case <-ctx.Done():
			return v
		case <-time.After(wait):
		}
	}
}

// transfer moves a few dollars from the account to the second one and
// follows the transfer to its end. overdraw moves, the other way, more
// than the second account holds: it must fail (insufficient_funds), an
// expected refusal.
func (u *vu) transfer(ctx context.Context, c *client, cat *catalog, overdraw bool) {
	from, to := u.account, u.second
	amount := int64(100 + u.rng.IntN(1900))
	if overdraw {
		from, to, amount = u.second, u.account, u.inSecond+overdrawMargin+1+int64(u.rng.IntN(10_000))
	}
	var started struct {
		ID string `json:"id"`
	}
	k := call{scenario: Transfer, method: "POST", path: "/api/v1/transfers", route: "POST /api/v1/transfers", token: u.tok.access,
		idemKey: uuid.NewString(), want: []int{202}, out: &started,
		body: map[string]any{"from_account_id": from, "to_account_id": to, "amount": Money{amount, cat.currency}}}
	if overdraw {
		k.refuse = []int{409}
	}
	a, err := c.do(ctx, k)
	if err != nil || a.status != 202 {
		return
	}
	c.st.transferStarted()
	fctx, cancel := context.WithTimeout(ctx, followTimeout)
	defer cancel()
	path := "/api/v1/transfers/" + url.PathEscape(started.ID)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		select {
		case <-fctx.Done():
			if ctx.Err() == nil {
				c.st.record(Transfer, Failed, 0, time.Now(), 0, fmt.Sprintf("a transfer not ended after %s", followTimeout))
			}
			c.st.transferEnded("")
			return
		case <-time.After(wait):
		}
		var t struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		}
		_, err := c.do(fctx, call{scenario: Transfer, method: "GET", path: path, route: "GET /api/v1/transfers/{id}",
			token: u.tok.access, want: []int{200}, out: &t, judge: func() (Outcome, string) {
				switch {
				case t.Status == "Pending":
					return OK, ""
				case overdraw && t.Status == "Failed" && t.Reason == "insufficient_funds":
					return Refused, ""
				case overdraw:
					return Failed, fmt.Sprintf("a transfer over the balance ended %s %s", t.Status, t.Reason)
				case t.Status == "Completed":
					return OK, ""
				}
				return Failed, fmt.Sprintf("transfer %s: %s", strings.ToLower(t.Status), t.Reason)
			}})
		if err != nil && t.Status == "" {
			if fctx.Err() != nil && ctx.Err() == nil {
				continue // counted as not ended, above
			}
			c.st.transferEnded("")
			return
		}
		if t.Status != "Pending" {
			c.st.transferEnded(t.Status)
			if t.Status == "Completed" {
				u.inSecond += amount
			}
			return
		}
	}
}
