package load

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Money is an amount in minor units of a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// product is a catalog entry the users browse and order.
type product struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Price Money  `json:"price"`
}

// catalog is what setup found to browse and order.
type catalog struct {
	products []product
	// currency is the products' and accounts' currency.
	currency string
}

// token is a user's access token and when to renew it.
type token struct {
	access, refresh string
	renewAt         time.Time
}

// vu is a virtual user: a customer of its own, with a funded account
// and, when an admin opened it, a second one.
type vu struct {
	n               int
	email, password string
	id              string
	account, second string
	tok             token
	rng             *mrand.Rand
	// orders are the user's latest orders' IDs (for the check scenario).
	orders []string
	// inSecond is what completed transfers moved into the second
	// account: its balance, since nothing else moves money there.
	inSecond int64
	// spent is what confirmed orders may have taken from the account.
	spent int64
}

// setupWorkers is how many users register at once.
const setupWorkers = 4

// setup reads the catalog, logs the admin in, restocks, and registers,
// logs in and funds every user. It is not measured.
func setup(ctx context.Context, cfg Config, c *client) ([]*vu, *catalog, error) {
	var mu sync.Mutex
	var told time.Time
	c.waiting = func(route string, status int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(told) < 10*time.Second {
			return
		}
		told = time.Now()
		switch status {
		case 429:
			cfg.Log("load: setting up: %s is rate limited (429): waiting its Retry-After (%s) and going on", route, d)
		case 0:
			cfg.Log("load: setting up: %s did not answer: trying again in %s", route, d)
		default:
			cfg.Log("load: setting up: %s answered %d: trying again in %s", route, status, d)
		}
	}
	defer func() { c.waiting = nil }()
	cat, err := readCatalog(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	cfg.Log("load: %d products in %s; registering %d customers in tenant %q", len(cat.products), cat.currency, cfg.Users, cfg.Tenant)

	var admin string
	needAdmin := cfg.Mix.Weight(Transfer) > 0
	if cfg.AdminEmail != "" {
		tok, err := login(ctx, c, cfg.AdminEmail, cfg.AdminPassword, cfg.Tenant)
		switch {
		case err == nil:
			admin = tok.access
		case needAdmin:
			return nil, nil, fmt.Errorf("the transfer scenario needs a second account per customer, which only an admin or merchant of tenant %q may open (POST /api/v1/accounts), and logging in as %s was refused: %v; pass --admin-email and --admin-password of one, or --mix with transfer=0", cfg.Tenant, cfg.AdminEmail, err)
		default:
			cfg.Log("load: logging in as %s was refused (%v): no restocking", cfg.AdminEmail, err)
		}
	} else if needAdmin {
		return nil, nil, fmt.Errorf("the transfer scenario needs a second account per customer, which only an admin or merchant of tenant %q may open (POST /api/v1/accounts): pass --admin-email and --admin-password, or --mix with transfer=0", cfg.Tenant)
	}
	if admin != "" && cfg.Restock {
		if err := restock(ctx, c, admin, cat); err != nil {
			return nil, nil, err
		}
	}

	run := runID()
	users := make([]*vu, cfg.Users)
	errs := make([]error, cfg.Users)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(setupWorkers, cfg.Users) {
		wg.Go(func() {
			for i := range next {
				u := &vu{n: i, email: fmt.Sprintf("load-%s-%d@load.agora.test", run, i), password: "load-" + run + "-pw", rng: newRand(cfg.Seed, i)}
				errs[i] = u.register(ctx, c, cfg.Tenant, admin, cat.currency)
				users[i] = u
			}
		})
	}
	for i := range cfg.Users {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 1 {
		return nil, nil, fmt.Errorf("%w (and %d more customers failed)", first, failed-1)
	}
	if first != nil {
		return nil, nil, first
	}
	cfg.Log("load: %d customers registered, funded and logged in; running", len(users))
	return users, cat, nil
}

// readCatalog pages through the products (up to 1,000).
func readCatalog(ctx context.Context, c *client) (*catalog, error) {
	cat := &catalog{}
	cursor := ""
	for len(cat.products) < 1000 {
		var page struct {
			Items      []product `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		path := "/api/v1/products?limit=500"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if _, err := c.do(ctx, call{method: "GET", path: path, route: "GET /api/v1/products", want: []int{200}, out: &page}); err != nil {
			return nil, fmt.Errorf("reading the catalog: %w", err)
		}
		cat.products = append(cat.products, page.Items...)
		if cursor = page.NextCursor; cursor == "" || len(page.Items) == 0 {
			break
		}
	}
	if len(cat.products) == 0 {
		return nil, fmt.Errorf("the catalog at %s is empty: agora load needs products to browse and order (agora serve's demo seed creates some)", c.base)
	}
	cat.currency = cat.products[0].Price.Currency
	kept := cat.products[:0]
	for _, p := range cat.products {
		if p.Price.Currency == cat.currency && p.Price.Amount > 0 {
			kept = append(kept, p)
		}
	}
	cat.products = kept
	return cat, nil
}

// restock tops every product's available stock up to RestockTo.
func restock(ctx context.Context, c *client, admin string, cat *catalog) error {
	for _, p := range cat.products {
		var inv struct {
			Available int64 `json:"available"`
		}
		if _, err := c.do(ctx, call{method: "GET", path: "/api/v1/inventory/" + url.PathEscape(p.ID), route: "GET /api/v1/inventory/{id}",
			token: admin, want: []int{200}, out: &inv}); err != nil {
			return fmt.Errorf("restocking: %w", err)
		}
		if inv.Available >= RestockTo {
			continue
		}
		if _, err := c.do(ctx, call{method: "POST", path: "/api/v1/inventory/" + url.PathEscape(p.ID) + "/restock", route: "POST /api/v1/inventory/{id}/restock",
			token: admin, body: map[string]any{"quantity": RestockTo - inv.Available}, want: []int{200}}); err != nil {
			return fmt.Errorf("restocking as the admin (an admin or merchant may; pass --restock=false to leave the stock alone): %w", err)
		}
	}
	return nil
}

// register makes u a customer: registers, logs in, deposits Funds and,
// with an admin's token, has a second account opened.
func (u *vu) register(ctx context.Context, c *client, tenant, admin, currency string) error {
	var reg struct {
		ID        string `json:"id"`
		AccountID string `json:"account_id"`
	}
	if _, err := c.do(ctx, call{method: "POST", path: "/api/v1/customers", route: "POST /api/v1/customers",
		body:    map[string]any{"email": u.email, "password": u.password, "name": fmt.Sprintf("Load user %d", u.n), "tenant": tenant},
		idemKey: "load-register-" + u.email, want: []int{201}, out: &reg}); err != nil {
		return fmt.Errorf("registering a customer: %w", err)
	}
	u.id, u.account = reg.ID, reg.AccountID
	tok, err := login(ctx, c, u.email, u.password, tenant)
	if err != nil {
		return fmt.Errorf("logging a new customer in: %w", err)
	}
	u.tok = tok
	var acct struct {
		Balance Money `json:"balance"`
	}
	if _, err := c.do(ctx, call{method: "GET", path: "/api/v1/accounts/" + url.PathEscape(u.account), route: "GET /api/v1/accounts/{id}",
		token: u.tok.access, want: []int{200}, out: &acct}); err != nil {
		return fmt.Errorf("reading a new customer's account: %w", err)
	}
	if acct.Balance.Currency != currency {
		return fmt.Errorf("customers' accounts open in %s and the products are priced in %s: agora load needs one currency", acct.Balance.Currency, currency)
	}
	deposit := func(tok string) (answer, error) {
		return c.do(ctx, call{method: "POST", path: "/api/v1/accounts/" + url.PathEscape(u.account) + "/deposits", route: "POST /api/v1/accounts/{id}/deposits",
			token: tok, idemKey: "load-fund-" + u.id, body: map[string]any{"amount": Money{Funds, currency}}, want: []int{200, 201}, refuse: []int{401, 403}})
	}
	a, err := deposit(u.tok.access)
	if err == nil && a.status >= 400 && admin != "" {
		a, err = deposit(admin)
	}
	if err != nil {
		return fmt.Errorf("funding a customer's account: %w", err)
	}
	if a.status >= 400 {
		what := "the customer's deposit into their own account"
		if admin != "" {
			what += " and the admin's"
		}
		return fmt.Errorf("funding was refused: %s got %d%s; the platform's route table must let an account's owner deposit, or pass --admin-email and --admin-password of an admin", what, a.status, problemSummary(a.raw))
	}
	if admin != "" {
		var opened struct {
			ID string `json:"id"`
		}
		if _, err := c.do(ctx, call{method: "POST", path: "/api/v1/accounts", route: "POST /api/v1/accounts", token: admin,
			idemKey: "load-second-" + u.id, body: map[string]any{"owner_id": u.id, "currency": currency},
			want: []int{201}, out: &opened}); err != nil {
			return fmt.Errorf("opening a customer's second account as the admin (an admin or merchant may): %w", err)
		}
		u.second = opened.ID
	}
	return nil
}

// login logs email in.
func login(ctx context.Context, c *client, email, password, tenant string) (token, error) {
	var out struct {
		AccessToken  string `json:"access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	a, err := c.do(ctx, call{method: "POST", path: "/api/v1/auth/token", route: "POST /api/v1/auth/token",
		body: map[string]any{"email": email, "password": password, "tenant": tenant}, want: []int{200}, refuse: []int{400, 401, 403}, out: &out})
	if err != nil {
		return token{}, err
	}
	if a.status != 200 {
		return token{}, fmt.Errorf("%d%s", a.status, problemSummary(a.raw))
	}
	return newToken(out.AccessToken, out.RefreshToken, out.ExpiresIn), nil
}

// newToken renews a minute before expiry (or half way, for short ones).
func newToken(access, refresh string, expiresIn int64) token {
	life := time.Duration(expiresIn) * time.Second
	if life <= 0 {
		life = 15 * time.Minute
	}
	early := min(time.Minute, life/2)
	return token{access: access, refresh: refresh, renewAt: time.Now().Add(life - early)}
}

// renew refreshes u's token when it is due (with its refresh token, else
// by logging in again). Not counted in any scenario.
func (u *vu) renew(ctx context.Context, c *client, tenant string) error {
	if time.Now().Before(u.tok.renewAt) {
		return nil
	}
	if u.tok.refresh != "" {
		var out struct {
			AccessToken  string `json:"access_token"`
			ExpiresIn    int64  `json:"expires_in"`
			RefreshToken string `json:"refresh_token"`
		}
		if _, err := c.do(ctx, call{method: "POST", path: "/api/v1/auth/refresh", route: "POST /api/v1/auth/refresh",
			body: map[string]any{"refresh_token": u.tok.refresh}, want: []int{200}, out: &out}); err == nil {
			u.tok = newToken(out.AccessToken, out.RefreshToken, out.ExpiresIn)
			return nil
		}
	}
	tok, err := login(ctx, c, u.email, u.password, tenant)
	if err != nil {
		return err
	}
	u.tok = tok
	return nil
}

// runID tells this run's customers from other runs'.
func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(b)
}
