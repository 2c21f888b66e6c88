package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/ops"
)

// runAgora runs this test binary as `agora args…` and returns its exit
// status, stdout and stderr.
func runAgora(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "AGORA_TEST_RUN_MAIN=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestProjectionsRebuild rebuilds a read model from the command line on a
// platform with orders: the command follows the rebuild to its end with
// progress, the read model answers as before, and bad names, bad
// credentials and bad URLs are refused with a clear message.
func TestProjectionsRebuild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	base := startEmbedded(t)
	if code, out, errOut := runLoadCommand(t, "--users", "4", "--requests", "150", "--mix", "order=1", base); code != 0 {
		t.Fatalf("agora load: exit %d\n%s\n%s", code, out, errOut)
	}
	orders := func() string {
		_, body, err := post(base+"/api/v1/auth/token", map[string]any{"email": app.DemoAdminEmail, "password": app.DemoAdminPassword, "tenant": "demo"})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", base+"/api/v1/orders?limit=100", nil)
		req.Header.Set("Authorization", "Bearer "+body["access_token"].(string))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(b), `"status":"Confirmed"`) {
			t.Fatalf("orders: %d, %.300s", res.StatusCode, b)
		}
		return string(b)
	}
	before := orders()

	code, out, errOut := runAgora(t, "projections", "rebuild", "--poll", "20ms", "--interval", "100ms", base, "ordering.order_list")
	if code != 0 || !strings.Contains(out, "rebuilt ordering.order_list") || !strings.Contains(errOut, "events") {
		t.Fatalf("rebuild: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("%s%s", out, errOut)
	if after := orders(); after != before {
		t.Errorf("the read model differs after the rebuild:\nbefore %s\nafter  %s", before, after)
	}

	code, out, errOut = runAgora(t, "projections", "--json", base)
	var list []ops.ProjectionStatus
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, errOut)
	}
	var found bool
	for _, p := range list {
		if p.Name != "ordering.order_list" {
			if p.Rebuild != nil {
				t.Errorf("%s: a rebuild nobody asked for: %+v", p.Name, p.Rebuild)
			}
			continue
		}
		found = true
		rb := p.Rebuild
		if rb == nil || rb.State != "done" || rb.Target == 0 || rb.Position < rb.Target || rb.EndedAt == nil || p.Rebuilding {
			t.Errorf("ordering.order_list after its rebuild: %+v %+v", p, rb)
		}
	}
	if !found {
		t.Errorf("ordering.order_list is not listed: %s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"projections", "rebuild", base, "no.such"}, "there are: "},
		{[]string{"projections", "rebuild", "--admin-password", "wrong-password-1", base, "ordering.order_list"}, "logging in as"},
		{[]string{"projections", "rebuild", base}, "want URL and a projection's name"},
		{[]string{"projections", "ftp://x"}, "is not an http(s) URL"},
	} {
		code, out, errOut := runAgora(t, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, want a failure saying %q\nstdout: %s\nstderr: %s", c.args, code, c.want, out, errOut)
		}
	}
}
