package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

// parseDockerfile reads the instructions of a Dockerfile: comments and
// parser directives skipped, lines ending in \ joined with the next.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfile checks the image's recipe: a Go builder of go.mod's
// release making a static binary of ./cmd/agora, then distroless static
// as nonroot with the binary on PATH, `agora serve` as ENTRYPOINT, the
// data directory a volume and a listener reachable from outside.
func TestDockerfile(t *testing.T) {
	fc := codeFacts(t)
	ins := parseDockerfile(t, filepath.Join("docker", "Dockerfile"))
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s before FROM", in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, run)", len(stages))
	}
	build, run := stages[0], stages[1]
	if want := "golang:" + fc.goVersion + "-"; !strings.HasPrefix(build[0].args, want) || !strings.HasSuffix(build[0].args, " AS build") {
		t.Errorf("build stage: FROM %s, want %s… AS build (go.mod's release)", build[0].args, want)
	}
	joined := func(st []instruction, cmd string) string {
		var b []string
		for _, in := range st {
			if in.cmd == cmd {
				b = append(b, in.args)
			}
		}
		return strings.Join(b, "\n")
	}
	if !strings.Contains(joined(build, "ENV"), "CGO_ENABLED=0") {
		t.Errorf("build stage: CGO_ENABLED=0 is not set")
	}
	if !strings.Contains(joined(build, "RUN"), "go build") || !strings.Contains(joined(build, "RUN"), "./cmd/agora") {
		t.Errorf("build stage: no go build of ./cmd/agora")
	}
	if run[0].args != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("run stage: FROM %s", run[0].args)
	}
	if u := joined(run, "USER"); u != "nonroot" && u != "65532" {
		t.Errorf("run stage: USER %q", u)
	}
	var entry []string
	if err := json.Unmarshal([]byte(joined(run, "ENTRYPOINT")), &entry); err != nil || !slices.Equal(entry, []string{"agora", "serve"}) {
		t.Errorf("ENTRYPOINT %q (%v), want [\"agora\",\"serve\"] in exec form", joined(run, "ENTRYPOINT"), err)
	}
	if !strings.Contains(joined(run, "COPY"), "--from=build") || !strings.Contains(joined(run, "COPY"), "/usr/local/bin/agora") {
		t.Errorf("run stage: the binary is not copied to /usr/local/bin/agora (on distroless's PATH)")
	}
	env := joined(run, "ENV")
	var dataDir string
	for _, f := range strings.Fields(env) {
		if v, ok := strings.CutPrefix(f, "AGORA_DATA_DIR="); ok {
			dataDir = v
		}
		if v, ok := strings.CutPrefix(f, "AGORA_ADDR="); ok && strings.HasPrefix(v, "127.") {
			t.Errorf("AGORA_ADDR=%s: loopback only", v)
		}
		if k, _, ok := strings.Cut(f, "="); ok && !fc.env[k] {
			t.Errorf("ENV %s: the binary does not read it", k)
		}
	}
	if dataDir == "" || !strings.Contains(joined(run, "VOLUME"), dataDir) {
		t.Errorf("the data directory %q is not a VOLUME", dataDir)
	}
	// The build context: .dockerignore keeps what the build needs.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(ignore), "\n")
	if !slices.Contains(lines, ".git") {
		t.Errorf(".dockerignore: .git not left out")
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "internal", "web", "eventstore", "messaging"} {
		if slices.Contains(lines, need) || slices.Contains(lines, "/"+need) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", need)
		}
	}
	// CGO off needs a pure-Go SQLite driver.
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "modernc.org/sqlite") || strings.Contains(string(mod), "mattn/go-sqlite3") {
		t.Errorf("go.mod: the SQLite driver is not modernc.org/sqlite (pure Go), so CGO_ENABLED=0 would not build")
	}
}
