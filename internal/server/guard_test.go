package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// callers signs a token per role with the platform's key in dir, as
// identity would issue them.
func callers(t *testing.T, dir string) map[string]string {
	t.Helper()
	key, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, auth.Options{})
	out := map[string]string{}
	for _, role := range routes.Roles {
		c := auth.Claims{Tenant: "demo", Roles: []string{role}}
		c.Subject = "guard-" + role
		tok, err := signer.Issue(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		out[role] = tok
	}
	return out
}

var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// walk calls every route of the default table that cluster serves at
// base, the service's own address: without a token, and with a token of
// each role the route does not allow. Public routes must not refuse an
// anonymous caller; every other route answers 401 without a token and 403
// to a role it does not name. It returns the table of answers.
func walk(t *testing.T, base func(cluster string) string, tokens map[string]string, clusters ...string) [][]string {
	t.Helper()
	var rows [][]string
	for _, rt := range routes.Default().Routes {
		if rt.Cluster == routes.Local || (len(clusters) > 0 && !slices.Contains(clusters, rt.Cluster)) {
			continue // served by the gateway itself, or not asked for
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = pathParam.ReplaceAllString(path, "guard-probe")
		call := func(token string) int {
			var body *strings.Reader
			if method == http.MethodPost || method == http.MethodPut {
				body = strings.NewReader(`{}`)
			} else {
				body = strings.NewReader("")
			}
			req, _ := http.NewRequest(method, "http://"+base(rt.Cluster)+path, body)
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", rt.Pattern, err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		anon := call("")
		row := []string{rt.Pattern, rt.Cluster, string(rt.Auth), strings.Join(rt.Roles, ","), fmt.Sprint(anon)}
		switch {
		case rt.Auth == routes.AuthNone && (anon == http.StatusUnauthorized || anon == http.StatusForbidden):
			t.Errorf("%s on %s: public route refused an anonymous caller: %d", rt.Pattern, rt.Cluster, anon)
		case rt.Auth != routes.AuthNone && anon != http.StatusUnauthorized:
			t.Errorf("%s on %s without a token: %d, want 401", rt.Pattern, rt.Cluster, anon)
		}
		var wrong []string
		for _, role := range routes.Roles {
			if len(rt.Roles) == 0 || slices.Contains(rt.Roles, role) {
				continue
			}
			got := call(tokens[role])
			wrong = append(wrong, fmt.Sprintf("%s:%d", role, got))
			if got != http.StatusForbidden {
				t.Errorf("%s on %s as %s: %d, want 403", rt.Pattern, rt.Cluster, role, got)
			}
		}
		rows = append(rows, append(row, strings.Join(wrong, " ")))
	}
	return rows
}

func logTable(t *testing.T, rows [][]string) {
	var b strings.Builder
	b.WriteString("| route | service | auth | roles | no token | wrong role |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3], r[4], r[5])
	}
	t.Log("\n" + b.String())
}

// TestEveryServiceEnforcesTheRouteTable walks the route table against
// each context's own address, not the gateway's: embedded (the loopback
// services behind the gateway) and distributed (a process per context).
func TestEveryServiceEnforcesTheRouteTable(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		_, srv := bootEdge(t, func(*server.Config) {})
		rows := walk(t, srv.ServiceAddr, callers(t, srv.DataDir()))
		if len(rows) < 25 {
			t.Fatalf("walked %d routes; the table has more", len(rows))
		}
		logTable(t, rows)
	})
	t.Run("distributed", func(t *testing.T) {
		pg, nats := testenv.PostgresURL(t), os.Getenv("AGORA_TEST_NATS_URL")
		if nats == "" {
			t.Skip("AGORA_TEST_NATS_URL not set; skipping distributed mode (.ci/run sets it)")
		}
		id := rand.Uint64()
		schema, ns := fmt.Sprintf("guard_%d", id), fmt.Sprintf("guard%d", id)
		t.Cleanup(func() {
			ctx := context.Background()
			if err := postgres.DropSchema(ctx, pg, schema); err != nil {
				t.Errorf("drop schema: %v", err)
			}
			if b, err := natsbus.Open(ctx, natsbus.Options{URL: nats, Namespace: ns}); err == nil {
				for _, s := range []string{"EVENTS", "CATALOG"} {
					_ = b.DeleteStream(ctx, s)
				}
				_ = b.JetStream().DeleteKeyValue(ctx, ns+"_registry")
				b.Close()
			}
		})
		dir := t.TempDir() // one signing key, shared by the processes
		tokens := callers(t, dir)
		var rows [][]string
		// One process at a time, each walked alone.
		for _, name := range server.Contexts {
			if name == server.Gateway {
				continue
			}
			srv, stop, err := server.Start(context.Background(), server.Config{Only: name, Addr: "127.0.0.1:0", DataDir: dir,
				PostgresURL: pg, PostgresSchema: schema, NATSURL: nats, NATSNamespace: ns, Logger: testLogger()})
			if err != nil {
				t.Fatalf("start %s: %v", name, err)
			}
			rows = append(rows, walk(t, func(string) string { return srv.Addr() }, tokens, name)...)
			stop()
		}
		if len(rows) < 25 {
			t.Fatalf("walked %d routes; the table has more", len(rows))
		}
		logTable(t, rows)
	})
}
