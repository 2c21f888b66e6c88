package web_test

// The storefront and console in a real browser: headless Chromium driven
// with chromedp against a whole embedded platform. Chromium comes from
// Debian's packages (chromium-headless-shell or chromium; .ci/run
// installs it); without it the tests skip, saying so, except in CI.
//
// On failure each scenario keeps a screenshot of its page (the path is
// logged). With AGORA_SCREENSHOTS=<dir> the scenarios also save the
// screenshots docs/ shows.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/agora-commerce/agora/internal/server"
)

// chrome finds a headless Chromium: AGORA_TEST_CHROME, else the first of
// Debian's binaries on PATH.
func chrome() string {
	if p := os.Getenv("AGORA_TEST_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "headless_shell", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// shop is one platform under test and the browser that visits it.
type shop struct {
	t       *testing.T
	srv     *server.Server
	base    string
	browser context.Context
	mu      sync.Mutex
	tokens  map[string]string
}

func open(t *testing.T) *shop {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests are not short (-short)")
	}
	path := chrome()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium on PATH: .ci/run installs chromium-headless-shell")
		}
		t.Skip("no Chromium on PATH (apt-get install chromium-headless-shell, or set AGORA_TEST_CHROME); skipping the browser tests")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, stop, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		SeedDemo: true, Logger: log, // rate limits off: one address logs many users in
		CheckoutTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return &shop{t: t, srv: srv, base: "http://" + srv.Addr(), browser: browser, tokens: map[string]string{}}
}

// tab is one visitor: a browser context of its own (its own cookies and
// storage), watching for script dialogs (an injected alert would open one).
type tab struct {
	t       *testing.T
	s       *shop
	ctx     context.Context
	mu      sync.Mutex
	dialogs []string
}

func (s *shop) visitor(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &tab{t: t, s: s, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/")); err != nil {
		t.Fatalf("open %s: %v", s.base, err)
	}
	b.until("the app's first page", `document.querySelector('main')?.dataset.view !== undefined`, 10*time.Second)
	err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.mu.Lock()
			b.dialogs = append(b.dialogs, d.Message)
			b.mu.Unlock()
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.keep("failed-" + name)
		}
	})
	return b
}

// keep saves a screenshot of the page: on failure into the artifacts
// directory (AGORA_BROWSER_ARTIFACTS, default the temp dir), else into
// AGORA_SCREENSHOTS when set.
func (b *tab) keep(name string) {
	dir := os.Getenv("AGORA_SCREENSHOTS")
	if strings.HasPrefix(name, "failed-") {
		dir = os.Getenv("AGORA_BROWSER_ARTIFACTS")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "agora-browser")
		}
	}
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	shot := chromedp.CaptureScreenshot() // what the viewport shows
	if strings.HasPrefix(name, "failed-") {
		shot = chromedp.FullScreenshot(100) // the whole page, to see what went wrong
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, png, 0o644); err == nil {
			b.t.Logf("screenshot: %s", p)
		}
	}
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a script expression in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until polls the page's expr (a boolean script) until it holds.
func (b *tab) until(what, expr string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if eval[bool](b, "!!("+expr+")") {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not within %s (page: %s)", what, within, eval[string](b, "location.hash + ' ' + document.querySelector('main').innerText.slice(0, 600)"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// goTo moves the single-page app to fragment path and waits for the view.
func (b *tab) goTo(path string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf("(location.hash = %q, true)", "#"+path))
	b.until("page "+path, fmt.Sprintf(`document.querySelector('main').dataset.view === %q`, "#"+path), 10*time.Second)
}

func (b *tab) fill(form string, fields map[string]string) {
	b.t.Helper()
	for name, v := range fields {
		b.do(chromedp.SetValue(chromedp.CSS(fmt.Sprintf(`%s [name=%q]`, form, name)), v))
	}
}

func (b *tab) submit(form string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(form + ` button[type=submit]`)))
}

func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// register signs a new customer up in the browser; it stays logged in.
func (b *tab) register(name string) string {
	b.t.Helper()
	email := fmt.Sprintf("%s-%d@example.com", name, rand.Uint64())
	b.goTo("/register")
	b.fill("#register", map[string]string{"name": name, "email": email, "password": "correct horse battery"})
	b.submit("#register")
	b.until("logged in after registering", `document.querySelector('#nav').innerText.includes('Log out')`, 10*time.Second)
	return email
}

// login logs in with the keyboard only: type, Tab, type, Enter.
func (b *tab) login(email, password string) {
	b.t.Helper()
	b.goTo("/login")
	b.do(chromedp.Focus(chromedp.CSS(`#login [name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`#login [name=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`#login [name=password]`), password+"\r"))
	b.until("logged in", `document.querySelector('#nav').innerText.includes('Log out')`, 10*time.Second)
}

// checkout buys the cart and returns the order's ID once its page shows.
func (b *tab) checkout() string {
	b.t.Helper()
	b.goTo("/cart")
	b.do(chromedp.Click(chromedp.CSS(`#to-checkout`)))
	b.until("checkout form", `document.querySelector('#checkout')`, 10*time.Second)
	b.fill("#checkout", map[string]string{"shipping_address.street": "1 Main St", "shipping_address.city": "Springfield",
		"shipping_address.zip_code": "62701", "shipping_address.country": "US"})
	eval[bool](b, "(window.__sameDocument = true)")
	b.submit("#checkout")
	b.until("order page", `location.hash.startsWith('#/orders/') && document.querySelector('#order-status')`, 15*time.Second)
	return strings.TrimPrefix(eval[string](b, "location.hash"), "#/orders/")
}

// status waits for the order page to show a final status and checks the
// page was never reloaded on the way (it moved by server-sent events).
func (b *tab) status(want string) {
	b.t.Helper()
	b.until("order "+want, fmt.Sprintf(`document.querySelector('#order-status')?.dataset.status === %q`, want), 20*time.Second)
	if !eval[bool](b, "window.__sameDocument === true") {
		b.t.Fatal("the order page was reloaded")
	}
}

// api calls the platform's API directly (setting up what a test needs);
// an answer other than 2xx fails the test.
func (s *shop) api(t *testing.T, token, method, path string, body any) map[string]any {
	t.Helper()
	out := s.try(t, token, method, path, body)
	if st := out["_status"].(float64); st >= 300 {
		t.Fatalf("%s %s: %v %v", method, path, st, out)
	}
	return out
}

// try calls the API and answers its body, with its status in "_status".
func (s *shop) try(t *testing.T, token, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := map[string]any{"_status": float64(res.StatusCode)}
	_ = json.Unmarshal(raw, &out)
	return out
}

func (s *shop) token(t *testing.T, email, password string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.tokens[email]; ok {
		return tok
	}
	tok := s.api(t, "", "POST", "/api/v1/auth/token", map[string]string{"email": email, "password": password})["access_token"].(string)
	s.tokens[email] = tok
	return tok
}

func TestStorefrontAndConsole(t *testing.T) {
	s := open(t)
	demo, _ := s.srv.Demo()
	var confirmed, unpaid string

	t.Run("a visitor registers, browses, adds two products, checks out and sees Confirmed live", func(t *testing.T) {
		b := s.visitor(t, "checkout")
		// A refused form shows the problem's field errors by the fields.
		b.goTo("/register")
		b.fill("#register", map[string]string{"name": "Ann", "email": "not-an-email", "password": "correct horse battery"})
		b.submit("#register")
		b.until("the email's error by the email field", `document.querySelector('#register [name=email]').getAttribute('aria-invalid') === 'true' && document.querySelector('#register [name=email]').closest('label').querySelector('.field-error')`, 5*time.Second)
		b.register("ann")
		b.goTo("/account")
		b.fill("#deposit", map[string]string{"amount": "1000.00"})
		b.submit("#deposit")
		b.until("the deposit shows", `document.querySelector('#balance')?.innerText.includes('1,000.00')`, 10*time.Second)
		b.goTo("/")
		b.until("products", `document.querySelectorAll('#products .card').length >= 2`, 10*time.Second)
		b.keep("storefront")
		b.do(chromedp.Click(chromedp.CSS(`#products .card:nth-child(1) button.add`)), chromedp.Click(chromedp.CSS(`#products .card:nth-child(2) button.add`)))
		b.until("two in the cart", `document.querySelector('#nav-cart').innerText.includes('(2)')`, 5*time.Second)
		confirmed = b.checkout()
		b.status("Confirmed")
		b.keep("order-confirmed")
	})

	t.Run("an order that cannot be paid shows Cancelled with insufficient_funds", func(t *testing.T) {
		b := s.visitor(t, "unpaid")
		b.register("bob") // no deposit: the account is empty
		b.goTo("/")
		b.until("products", `document.querySelector('#products .card button.add')`, 10*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`#products .card:nth-child(1) button.add`)))
		unpaid = b.checkout()
		b.status("Cancelled")
		b.until("the reason", `document.querySelector('#order-reason')?.innerText === 'insufficient_funds'`, 5*time.Second)
	})

	t.Run("an admin opens the saga timeline and the trace waterfall", func(t *testing.T) {
		if confirmed == "" || unpaid == "" {
			t.Skip("needs the orders of the scenarios above")
		}
		b := s.visitor(t, "admin")
		b.login(demo.AdminEmail, demo.AdminPassword)
		b.goTo("/orders/" + unpaid)
		b.do(chromedp.Click(chromedp.CSS(`a[href^="#/ops/sagas/"]`)))
		b.until("the cancelled order's timeline", `document.querySelectorAll('#timeline li').length >= 3`, 10*time.Second)
		b.until("its reason", `document.querySelector('main').innerText.includes('insufficient_funds')`, 5*time.Second)
		b.goTo("/orders/" + confirmed)
		b.do(chromedp.Click(chromedp.CSS(`a[href^="#/ops/sagas/"]`)))
		b.until("the timeline", `document.querySelectorAll('#timeline li').length >= 4`, 10*time.Second)
		b.keep("saga-timeline")
		b.do(chromedp.Click(chromedp.CSS(`main a.trace`)))
		b.until("the waterfall", `document.querySelectorAll('#waterfall .span-row').length > 5`, 10*time.Second)
		want := []string{"gateway", "ordering", "inventory", "payments", "shipping"}
		b.until("spans of "+strings.Join(want, ", "), fmt.Sprintf(`(() => { const s = new Set([...document.querySelectorAll('#waterfall .span-row')].map(r => r.dataset.service)); return %s.every(x => s.has(x)); })()`, js(strings.Join(want, ","))+".split(',')"), 10*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`#waterfall .span-row`)))
		b.until("a span's details", `document.querySelector('#span-detail h3')`, 5*time.Second)
		b.keep("trace-waterfall")
		// The order's stream, and from an event its correlation: every
		// event the checkout request caused, across contexts.
		b.goTo("/ops/streams/order-" + confirmed)
		b.until("the order's events with their data", `document.querySelectorAll('details.event').length >= 2 && document.querySelector('details.event pre.json')`, 5*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`details.event a[href*="correlation_id"]`)))
		b.until("the correlation's events across streams", `new Set([...document.querySelectorAll('#log tr')].map(r => r.dataset.stream.split('-')[0])).size >= 3`, 5*time.Second)
		// Processing and services show the platform's parts.
		b.goTo("/ops/processing")
		b.until("projections, relays and consumers", `document.querySelectorAll('#projections tbody tr').length >= 3 && document.querySelectorAll('#relays tbody tr').length >= 1 && document.querySelectorAll('#consumers tbody tr').length >= 1`, 5*time.Second)
		// Rebuild the first projection from its button: the rebuild runs
		// and ends, and the page shows its button again.
		first := eval[string](b, `document.querySelector('#projections tbody tr td').innerText`)
		eval[bool](b, `(window.confirm = () => true, true)`)
		b.do(chromedp.Click(chromedp.CSS(`#projections tbody tr button.danger`)))
		adminToken := s.token(t, demo.AdminEmail, demo.AdminPassword)
		b.until("the rebuild to end", `!document.body.innerText.includes('rebuilding…') && document.querySelector('#projections tbody tr button.danger')`, 10*time.Second)
		var state string
		for _, p := range s.api(t, adminToken, "GET", "/api/v1/ops/processing", nil)["projections"].([]any) {
			if p := p.(map[string]any); p["name"] == first {
				if rb, ok := p["rebuild"].(map[string]any); ok {
					state, _ = rb["state"].(string)
				}
			}
		}
		if state != "done" {
			t.Errorf("projection %s after its Rebuild button: rebuild state %q, want done", first, state)
		}
		b.goTo("/ops/services")
		b.until("every cluster with its breaker", `document.querySelectorAll('#services .cluster').length >= 6 && document.querySelector('#services .badge-closed')`, 5*time.Second)
	})

	t.Run("the live tail shows a new order's events within 1 s", func(t *testing.T) {
		b := s.visitor(t, "tail")
		b.login(demo.AdminEmail, demo.AdminPassword)
		b.goTo("/ops/log")
		b.until("live", `document.querySelector('#log-state')?.innerText === 'Live'`, 10*time.Second)
		token := s.token(t, demo.CustomerEmail, demo.CustomerPassword)
		products := s.api(t, "", "GET", "/api/v1/products?limit=1", nil)["items"].([]any)
		o := s.api(t, token, "POST", "/api/v1/orders", map[string]any{"payment_account_id": demo.CustomerAccountID,
			"items":            []any{map[string]any{"product_id": products[0].(map[string]any)["id"], "quantity": 1}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "zip_code": "62701", "country": "US"}})
		placed := time.Now()
		id := o["id"].(string)
		b.until("the order's events", fmt.Sprintf(`document.querySelector('#log tr[data-stream="order-' + %s + '"]')`, js(id)), 5*time.Second)
		if took := time.Since(placed); took > time.Second {
			t.Errorf("the order's first event showed %s after the POST answered, want within 1 s", took)
		}
		b.keep("live-log")
		// Paused, the tail holds new events back, and shows them on Resume.
		b.do(chromedp.Click(chromedp.CSS(`#pause`)))
		rows := eval[int](b, `document.querySelectorAll('#log tr').length`)
		again := s.api(t, token, "POST", "/api/v1/orders", map[string]any{"payment_account_id": demo.CustomerAccountID,
			"items":            []any{map[string]any{"product_id": products[0].(map[string]any)["id"], "quantity": 1}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "zip_code": "62701", "country": "US"}})
		b.until("events held", `/held/.test(document.querySelector('#log-state').innerText)`, 5*time.Second)
		if n := eval[int](b, `document.querySelectorAll('#log tr').length`); n != rows {
			t.Errorf("paused, the tail grew from %d to %d rows", rows, n)
		}
		b.do(chromedp.Click(chromedp.CSS(`#pause`)))
		b.until("the held events shown", fmt.Sprintf(`document.querySelector('#log tr[data-stream="order-' + %s + '"]')`, js(again["id"].(string))), 5*time.Second)
	})

	t.Run("a saga forced to Failed is retried from the console and ends", func(t *testing.T) {
		// Shipping fails, and releasing the stock (a compensation) keeps
		// failing: the saga stops Failed and waits for an operator.
		s.srv.Carrier.Set(1, 0)
		s.srv.FailCalls("cmd.inventory.release", true)
		defer s.srv.Carrier.Set(0, 0)
		defer s.srv.FailCalls("cmd.inventory.release", false)
		customer := s.token(t, demo.CustomerEmail, demo.CustomerPassword)
		admin := s.token(t, demo.AdminEmail, demo.AdminPassword)
		products := s.api(t, "", "GET", "/api/v1/products?limit=1", nil)["items"].([]any)
		o := s.api(t, customer, "POST", "/api/v1/orders", map[string]any{"payment_account_id": demo.CustomerAccountID,
			"items":            []any{map[string]any{"product_id": products[0].(map[string]any)["id"], "quantity": 1}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "zip_code": "62701", "country": "US"}})
		sagaID := o["saga_id"].(string)
		deadline := time.Now().Add(30 * time.Second)
		for s.try(t, admin, "GET", "/api/v1/sagas/"+sagaID, nil)["status"] != "Failed" {
			if time.Now().After(deadline) {
				t.Fatalf("saga %s did not fail: %v", sagaID, s.try(t, admin, "GET", "/api/v1/sagas/"+sagaID, nil))
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.srv.FailCalls("cmd.inventory.release", false)
		b := s.visitor(t, "retry")
		b.login(demo.AdminEmail, demo.AdminPassword)
		b.goTo("/ops/sagas?status=Failed")
		b.until("the failed saga listed", fmt.Sprintf(`document.querySelector('#sagas a[href="#/ops/sagas/' + %s + '"]')`, js(sagaID)), 10*time.Second)
		b.goTo("/ops/sagas/" + sagaID)
		b.until("retry", `document.querySelector('#retry')`, 5*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`#retry`)))
		b.until("the saga ended", `!document.querySelector('#retry') && /Compensated|Completed/.test(document.querySelector('main p .badge')?.innerText)`, 20*time.Second)
		if st := s.api(t, admin, "GET", "/api/v1/sagas/"+sagaID, nil)["status"]; st != "Compensated" {
			t.Errorf("saga after retry: %v, want Compensated", st)
		}
		if st := s.api(t, customer, "GET", "/api/v1/orders/"+o["id"].(string), nil)["status"]; st != "Cancelled" {
			t.Errorf("order after retry: %v, want Cancelled", st)
		}
	})

	t.Run("a product page's availability is live", func(t *testing.T) {
		b := s.visitor(t, "stock")
		id := s.api(t, "", "GET", "/api/v1/products?limit=1", nil)["items"].([]any)[0].(map[string]any)["id"].(string)
		b.goTo("/product/" + id)
		b.until("the stock", `/in stock|Out of stock/.test(document.querySelector('#availability').innerText)`, 5*time.Second)
		before := s.api(t, "", "GET", "/api/v1/inventory/"+id, nil)["available"].(float64)
		eval[bool](b, "(window.__sameDocument = true)")
		s.api(t, s.token(t, demo.MerchantEmail, demo.MerchantPassword), "POST", "/api/v1/inventory/"+id+"/restock", map[string]any{"quantity": 7})
		b.until("the restock shows", fmt.Sprintf(`document.querySelector('#availability').innerText === '%d in stock'`, int(before)+7), 5*time.Second)
		if !eval[bool](b, "window.__sameDocument === true") {
			t.Fatal("the product page was reloaded")
		}
	})

	t.Run("hostile product names render as text", func(t *testing.T) {
		merchant := s.token(t, demo.MerchantEmail, demo.MerchantPassword)
		names := []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`}
		var ids []string
		for i, n := range names {
			p := s.api(t, merchant, "POST", "/api/v1/products", map[string]any{"sku": fmt.Sprintf("HOSTILE-%d-%d", i, rand.Uint32()), "name": n,
				"description": n, "price": map[string]any{"amount": 100, "currency": "USD"}})
			ids = append(ids, p["id"].(string))
		}
		b := s.visitor(t, "hostile")
		for i, n := range names {
			b.goTo("/product/" + ids[i])
			if got := eval[string](b, `document.querySelector('main h1').textContent`); got != n {
				t.Errorf("product page title = %q, want the name as text %q", got, n)
			}
		}
		b.goTo("/?q=alert")
		b.until("both hostile products listed", `document.querySelectorAll('#products .card').length >= 2`, 5*time.Second)
		shown := eval[[]string](b, `[...document.querySelectorAll('#products .name')].map(e => e.textContent)`)
		for _, n := range names {
			if !slices.Contains(shown, n) {
				t.Errorf("catalog shows %q, want %q among them as text", shown, n)
			}
		}
		if n := eval[int](b, `document.querySelectorAll('img[src="x"], main script').length`); n != 0 {
			t.Errorf("%d injected elements in the page", n)
		}
		m := s.visitor(t, "hostile-merchant")
		m.login(demo.MerchantEmail, demo.MerchantPassword)
		m.goTo("/ops/catalog")
		if n := eval[int](m, `document.querySelectorAll('img[src="x"], main script').length`); n != 0 {
			t.Errorf("%d injected elements in the console's catalog", n)
		}
		for _, tb := range []*tab{b, m} {
			tb.mu.Lock()
			if len(tb.dialogs) > 0 {
				t.Errorf("script dialogs opened: %q", tb.dialogs)
			}
			tb.mu.Unlock()
		}
	})

	t.Run("at 375 px no page scrolls sideways", func(t *testing.T) {
		if confirmed == "" {
			t.Skip("needs the order of the first scenario")
		}
		check := func(b *tab, paths ...string) {
			b.do(chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2)))
			for _, p := range paths {
				b.goTo(p)
				time.Sleep(150 * time.Millisecond) // late parts (charts, stock) settle
				if w := eval[[]int](b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
					wide := eval[[]string](b, `[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 6).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`)
					t.Errorf("%s at 375 px: the page is %d px wide in a %d px viewport; too wide: %q", p, w[0], w[1], wide)
				}
			}
		}
		visitor := s.visitor(t, "phone-visitor")
		check(visitor, "/", "/product/"+s.api(t, "", "GET", "/api/v1/products?limit=1", nil)["items"].([]any)[0].(map[string]any)["id"].(string), "/cart", "/login", "/register")
		visitor.goTo("/")
		visitor.keep("phone-storefront")
		admin := s.visitor(t, "phone-admin")
		admin.login(demo.AdminEmail, demo.AdminPassword)
		check(admin, "/orders", "/orders/"+confirmed, "/account", "/ops", "/ops/log", "/ops/sagas", "/ops/processing", "/ops/traces",
			"/ops/services", "/ops/audit", "/ops/catalog")
		traces := s.api(t, s.token(t, demo.AdminEmail, demo.AdminPassword), "GET", "/api/v1/ops/traces?order_id="+confirmed, nil)["items"].([]any)
		if len(traces) > 0 {
			check(admin, "/ops/traces/"+traces[0].(map[string]any)["trace_id"].(string))
		}
		admin.do(chromedp.EmulateViewport(1280, 900))
		admin.goTo("/ops")
		admin.until("charts", `document.querySelectorAll('#charts .chart canvas').length >= 4`, 10*time.Second)
		admin.keep("console-overview")
	})
}
