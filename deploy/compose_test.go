package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads compose.yaml with profile, as `docker compose
// --profile <profile>` would (the Compose specification's schema
// included).
func loadCompose(t *testing.T, profile string) *types.Project {
	t.Helper()
	dir, err := filepath.Abs("compose")
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("agora", true)
		o.Profiles = []string{profile}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkComposeAgora checks an Agora service: the image built from the
// Dockerfile, locked down, and an environment the binary reads.
func checkComposeAgora(t *testing.T, fc *facts, p *types.Project, s types.ServiceConfig) string {
	t.Helper()
	repo, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Build == nil || s.Build.Dockerfile != "deploy/docker/Dockerfile" || s.Build.Context != repo {
		t.Errorf("%s: build the repository with deploy/docker/Dockerfile (build %+v)", s.Name, s.Build)
	}
	if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
		t.Errorf("%s: read_only and cap_drop ALL", s.Name)
	}
	if len(s.Entrypoint) > 0 || len(s.Command) > 0 {
		t.Errorf("%s: keeps the image's ENTRYPOINT (agora serve)", s.Name)
	}
	for k, v := range s.Environment {
		if !fc.env[k] {
			t.Errorf("%s: env %s: the binary does not read it", s.Name, k)
		}
		if k == "AGORA_ADDR" && v != nil && strings.HasPrefix(*v, "127.") {
			t.Errorf("%s: AGORA_ADDR on loopback", s.Name)
		}
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" && v != nil {
			host := strings.Split(strings.TrimPrefix(*v, "http://"), ":")[0]
			if _, err := p.GetService(host); err != nil {
				t.Errorf("%s: traces go to %s, not a service of the profile", s.Name, host)
			}
		}
	}
	only := ""
	if v := s.Environment["AGORA_ONLY"]; v != nil {
		only = *v
		if !slices.Contains(fc.contexts, only) {
			t.Errorf("%s: AGORA_ONLY %s is not one of %v", s.Name, only, fc.contexts)
		}
	}
	return only
}

func TestComposeEmbedded(t *testing.T) {
	fc := codeFacts(t)
	p := loadCompose(t, "embedded")
	if names := p.ServiceNames(); !slices.Equal(names, []string{"agora"}) {
		t.Fatalf("embedded profile: services %v, want [agora]", names)
	}
	s, _ := p.GetService("agora")
	if only := checkComposeAgora(t, fc, p, s); only != "" {
		t.Errorf("embedded runs everything: AGORA_ONLY %s", only)
	}
	if len(s.Volumes) == 0 || s.Volumes[0].Target != "/var/lib/agora" {
		t.Errorf("embedded: the data directory is not on a volume: %+v", s.Volumes)
	}
}

func TestComposeDistributed(t *testing.T) {
	fc := codeFacts(t)
	p := loadCompose(t, "distributed")
	instances := map[string]int{}
	for _, s := range p.Services {
		if s.Image != "agora:dev" {
			continue
		}
		only := checkComposeAgora(t, fc, p, s)
		instances[only]++
		for _, k := range []string{"AGORA_POSTGRES_URL", "AGORA_NATS_URL", "AGORA_REDIS_URL", "AGORA_JWKS_URL", "AGORA_ADVERTISE_URL"} {
			if s.Environment[k] == nil && !(only == "gateway" && k == "AGORA_ADVERTISE_URL") {
				t.Errorf("%s: %s not set", s.Name, k)
			}
		}
	}
	for _, c := range fc.contexts {
		want := 1
		if c == "ordering" || c == "payments" {
			want = 2
		}
		if instances[c] != want {
			t.Errorf("distributed: %d instances of %s, want %d", instances[c], c, want)
		}
	}
	if instances[""] != 0 {
		t.Errorf("distributed: an embedded process in the distributed profile")
	}
	nats, err := p.GetService("nats")
	if err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(nats.Command, " ")
	if !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-m 8222") {
		t.Errorf("nats: JetStream and the monitoring port 8222: %q", cmd)
	}
	for _, name := range []string{"postgres", "redis", "jaeger"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("distributed: %v", err)
		}
	}
}
