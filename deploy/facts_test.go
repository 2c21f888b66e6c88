package deploy_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// root is the repository's root, from this package's directory.
const root = ".."

// facts are what the code says that the manifests must agree with, read
// from the Go sources (not imported: building the whole platform into
// this test would cost minutes, and the facts are literals).
type facts struct {
	// env are the environment variables the binary reads: every "AGORA_…"
	// and "OTEL_…" string literal of a non-test source, and
	// AGORA_POSTGRES_URL_<CONTEXT> for every module.
	env map[string]bool
	// contexts are the names --only takes: the gateway and every module
	// of internal/server's Modules.
	contexts []string
	// modules are the modules alone (contexts less the gateway).
	modules []string
	// addr is AGORA_ADDR's default (cmd/agora).
	addr string
	// namespace is AGORA_NATS_NAMESPACE's default (cmd/agora).
	namespace string
	// paths are the GET paths the processes serve beside their API
	// (internal/server: "GET /healthz", …).
	paths map[string]bool
	// durables are the JetStream durable consumers by their stream's full
	// name, each with the context whose code runs it.
	durables map[string]map[string]string
	// maxRetries and attemptTimeout are the gateway's resilience defaults
	// (internal/gateway/resilience).
	maxRetries     int
	attemptTimeout time.Duration
	// goVersion is go.mod's go directive.
	goVersion string
}

var (
	factsOnce sync.Once
	theFacts  *facts
	factsErr  error
)

// codeFacts reads the facts once per test binary.
func codeFacts(t *testing.T) *facts {
	t.Helper()
	factsOnce.Do(func() { theFacts, factsErr = readFacts() })
	if factsErr != nil {
		t.Fatal(factsErr)
	}
	return theFacts
}

// pkg is a parsed package directory.
type pkg struct {
	dir   string
	files []*ast.File
}

// parsed caches packages by directory (relative to root).
type sources struct {
	fset *token.FileSet
	pkgs map[string]*pkg
}

func (s *sources) pkg(dir string) (*pkg, error) {
	if p, ok := s.pkgs[dir]; ok {
		return p, nil
	}
	ents, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		return nil, err
	}
	p := &pkg{dir: dir}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(s.fset, filepath.Join(root, dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		p.files = append(p.files, f)
	}
	s.pkgs[dir] = p
	return p, nil
}

const modulePath = "github.com/agora-commerce/agora/"

// importDir is the directory (relative to root) of the package that
// selector x names in file f.
func importDir(f *ast.File, x string) (string, bool) {
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := filepath.Base(path)
		if im.Name != nil {
			name = im.Name.Name
		}
		if name == x && strings.HasPrefix(path, modulePath) {
			return strings.TrimPrefix(path, modulePath), true
		}
	}
	return "", false
}

// valueSpec finds package-level var or const name in p.
func (p *pkg) valueSpec(name string) (ast.Expr, *ast.File) {
	for _, f := range p.files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, sp := range g.Specs {
				vs, ok := sp.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, n := range vs.Names {
					if n.Name == name && i < len(vs.Values) {
						return vs.Values[i], f
					}
				}
			}
		}
	}
	return nil, nil
}

// resolve follows expr (a literal, an identifier of p, or a selector of
// another package of the module) to its declaration's value.
func (s *sources) resolve(p *pkg, f *ast.File, e ast.Expr) (ast.Expr, error) {
	for range 5 {
		switch x := e.(type) {
		case *ast.Ident:
			v, vf := p.valueSpec(x.Name)
			if v == nil {
				return nil, fmt.Errorf("%s: %s not found", p.dir, x.Name)
			}
			e, f = v, vf
		case *ast.SelectorExpr:
			id, ok := x.X.(*ast.Ident)
			if !ok {
				return nil, fmt.Errorf("%s: cannot resolve %T", p.dir, x.X)
			}
			dir, ok := importDir(f, id.Name)
			if !ok {
				return nil, fmt.Errorf("%s: import %s not in the module", p.dir, id.Name)
			}
			q, err := s.pkg(dir)
			if err != nil {
				return nil, err
			}
			v, vf := q.valueSpec(x.Sel.Name)
			if v == nil {
				return nil, fmt.Errorf("%s: %s not found", dir, x.Sel.Name)
			}
			p, e, f = q, v, vf
		default:
			return e, nil
		}
	}
	return nil, fmt.Errorf("%s: too deep", p.dir)
}

func (s *sources) str(p *pkg, f *ast.File, e ast.Expr) (string, error) {
	v, err := s.resolve(p, f, e)
	if err != nil {
		return "", err
	}
	lit, ok := v.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", fmt.Errorf("%s: not a string literal", p.dir)
	}
	return strconv.Unquote(lit.Value)
}

// field is composite literal c's value of key, or nil.
func field(c *ast.CompositeLit, key string) ast.Expr {
	for _, el := range c.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if id, ok := kv.Key.(*ast.Ident); ok && id.Name == key {
				return kv.Value
			}
		}
	}
	return nil
}

func isType(e ast.Expr, pkgName, typ string) bool {
	se, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := se.X.(*ast.Ident)
	return ok && id.Name == pkgName && se.Sel.Name == typ
}

var envName = regexp.MustCompile(`^(AGORA|OTEL)_[A-Z0-9_]+$`)

func readFacts() (*facts, error) {
	s := &sources{fset: token.NewFileSet(), pkgs: map[string]*pkg{}}
	fc := &facts{env: map[string]bool{}, paths: map[string]bool{}, durables: map[string]map[string]string{}}

	// Every non-test source but the test helpers' and deploy's own.
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			base := d.Name()
			if rel != "." && (strings.HasPrefix(base, ".") || base == "testdata" || rel == "deploy" || rel == filepath.Join("internal", "testenv") || base == "web") {
				return filepath.SkipDir
			}
			dirs = append(dirs, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Env: string literals in the sources that the binary links (the
	// whole module but tests, test helpers and deploy).
	for _, dir := range dirs {
		p, err := s.pkg(dir)
		if err != nil {
			return nil, err
		}
		for _, f := range p.files {
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil && envName.MatchString(v) {
						fc.env[v] = true
					}
				}
				return true
			})
		}
	}

	// Contexts: internal/server's Modules, each module.Def's Name.
	srv, err := s.pkg("internal/server")
	if err != nil {
		return nil, err
	}
	mods, mf := srv.valueSpec("Modules")
	cl, ok := mods.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("internal/server: Modules is not a composite literal")
	}
	for _, el := range cl.Elts {
		def, err := s.resolve(srv, mf, el)
		if err != nil {
			return nil, err
		}
		dc, ok := def.(*ast.CompositeLit)
		if !ok || field(dc, "Name") == nil {
			return nil, fmt.Errorf("internal/server: a module is not a module.Def literal with a Name")
		}
		// The Name is a literal in the module's own package.
		name, err := strconv.Unquote(field(dc, "Name").(*ast.BasicLit).Value)
		if err != nil {
			return nil, err
		}
		fc.modules = append(fc.modules, name)
	}
	gw, gf := srv.valueSpec("Gateway")
	if gw == nil {
		return nil, fmt.Errorf("internal/server: no Gateway")
	}
	gateway, err := s.str(srv, gf, gw)
	if err != nil {
		return nil, err
	}
	fc.contexts = append([]string{gateway}, fc.modules...)
	for _, m := range fc.modules {
		fc.env["AGORA_POSTGRES_URL_"+strings.ToUpper(m)] = true
	}
	// The operational paths: "GET /…" literals of internal/server.
	for _, f := range srv.files {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, _ := strconv.Unquote(lit.Value); strings.HasPrefix(v, "GET /") {
					fc.paths[strings.TrimPrefix(v, "GET ")] = true
				}
			}
			return true
		})
	}

	// Flag defaults: env("AGORA_ADDR", "…") in cmd/agora.
	cmd, err := s.pkg("cmd/agora")
	if err != nil {
		return nil, err
	}
	defaults := map[string]string{}
	for _, f := range cmd.files {
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok || len(c.Args) != 2 {
				return true
			}
			if id, ok := c.Fun.(*ast.Ident); !ok || id.Name != "env" {
				return true
			}
			k, ok1 := c.Args[0].(*ast.BasicLit)
			v, ok2 := c.Args[1].(*ast.BasicLit)
			if ok1 && ok2 {
				ks, _ := strconv.Unquote(k.Value)
				vs, _ := strconv.Unquote(v.Value)
				defaults[ks] = vs
			}
			return true
		})
	}
	fc.addr, fc.namespace = defaults["AGORA_ADDR"], defaults["AGORA_NATS_NAMESPACE"]
	if fc.addr == "" || fc.namespace == "" {
		return nil, fmt.Errorf("cmd/agora: no default for AGORA_ADDR or AGORA_NATS_NAMESPACE")
	}

	if err := s.consumers(fc, dirs); err != nil {
		return nil, err
	}
	if err := s.resilience(fc); err != nil {
		return nil, err
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	if m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod); m != nil {
		fc.goVersion = string(m[1])
	}
	return fc, nil
}

// consumers finds the durable JetStream consumers: messaging.Consumer
// literals that are not Ephemeral, and module.Reaction calls (whose
// consumer's stream is the one in Reaction's own literal). natsbus runs a
// consumer of several subjects as one durable per subject, <name>-<i>,
// on the stream <NAMESPACE>_<STREAM>.
func (s *sources) consumers(fc *facts, dirs []string) error {
	modp, err := s.pkg("internal/module")
	if err != nil {
		return err
	}
	var reactionStream string
	for _, f := range modp.files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Name.Name != "Reaction" {
				continue
			}
			ast.Inspect(fd, func(n ast.Node) bool {
				if c, ok := n.(*ast.CompositeLit); ok && isType(c.Type, "messaging", "Consumer") && field(c, "Stream") != nil {
					reactionStream, err = s.str(modp, f, field(c, "Stream"))
				}
				return true
			})
		}
	}
	if err != nil {
		return err
	}
	if reactionStream == "" {
		return fmt.Errorf("internal/module: Reaction's stream not found")
	}
	add := func(p *pkg, f *ast.File, name, stream string, subjects ast.Expr) error {
		n := 1
		if subjects != nil {
			v, err := s.resolve(p, f, subjects)
			if err != nil {
				return err
			}
			sl, ok := v.(*ast.CompositeLit)
			if !ok {
				return fmt.Errorf("%s: consumer %s's subjects are not a literal", p.dir, name)
			}
			n = len(sl.Elts)
		}
		full := strings.ToUpper(fc.namespace) + "_" + strings.ToUpper(stream)
		if fc.durables[full] == nil {
			fc.durables[full] = map[string]string{}
		}
		ctx := strings.Split(p.dir, "/")[1] // internal/<context>/…
		if n == 1 {
			fc.durables[full][name] = ctx
			return nil
		}
		for i := range n {
			fc.durables[full][fmt.Sprintf("%s-%d", name, i)] = ctx
		}
		return nil
	}
	for _, dir := range dirs {
		if !strings.HasPrefix(dir, "internal/") || dir == "internal/module" {
			continue
		}
		p, err := s.pkg(dir)
		if err != nil {
			return err
		}
		for _, f := range p.files {
			var ferr error
			ast.Inspect(f, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.CompositeLit:
					if !isType(x.Type, "messaging", "Consumer") || field(x, "Name") == nil || field(x, "Stream") == nil {
						return true
					}
					if e, ok := field(x, "Ephemeral").(*ast.Ident); ok && e.Name == "true" {
						return true
					}
					name, err := s.str(p, f, field(x, "Name"))
					if err != nil {
						return true // a name that is not a constant: not a durable of its own
					}
					stream, err := s.str(p, f, field(x, "Stream"))
					if err == nil {
						err = add(p, f, name, stream, field(x, "Subjects"))
					}
					if err != nil {
						ferr = err
					}
				case *ast.CallExpr:
					if !isType(x.Fun, "module", "Reaction") || len(x.Args) < 2 {
						return true
					}
					name, err := s.str(p, f, x.Args[0])
					if err == nil {
						err = add(p, f, name, reactionStream, x.Args[1])
					}
					if err != nil {
						ferr = err
					}
				}
				return true
			})
			if ferr != nil {
				return ferr
			}
		}
	}
	return nil
}

// resilience reads the gateway's per-cluster defaults from
// resilience.Config.defaults: `c.MaxRetries = 2`, `c.AttemptTimeout = 10 *
// time.Second`.
func (s *sources) resilience(fc *facts) error {
	p, err := s.pkg("internal/gateway/resilience")
	if err != nil {
		return err
	}
	fc.maxRetries, fc.attemptTimeout = -1, -1
	for _, f := range p.files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Name.Name != "defaults" {
				continue
			}
			ast.Inspect(fd, func(n ast.Node) bool {
				as, ok := n.(*ast.AssignStmt)
				if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
					return true
				}
				se, ok := as.Lhs[0].(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch se.Sel.Name {
				case "MaxRetries": // the first: the default (then "negative: none")
					if lit, ok := as.Rhs[0].(*ast.BasicLit); ok && lit.Kind == token.INT && fc.maxRetries < 0 {
						fc.maxRetries, _ = strconv.Atoi(lit.Value)
					}
				case "AttemptTimeout":
					if b, ok := as.Rhs[0].(*ast.BinaryExpr); ok && b.Op == token.MUL {
						lit, ok1 := b.X.(*ast.BasicLit)
						if ok1 && isType(b.Y, "time", "Second") {
							n, _ := strconv.Atoi(lit.Value)
							fc.attemptTimeout = time.Duration(n) * time.Second
						}
					}
				}
				return true
			})
		}
	}
	if fc.maxRetries < 0 || fc.attemptTimeout < 0 {
		return fmt.Errorf("internal/gateway/resilience: defaults for MaxRetries and AttemptTimeout not found")
	}
	return nil
}

// TestFactsFromCode checks that the facts were found where the code keeps
// them: if a refactor moves them, this says so first.
func TestFactsFromCode(t *testing.T) {
	fc := codeFacts(t)
	for _, want := range []string{"AGORA_ADDR", "AGORA_DATA_DIR", "AGORA_ONLY", "AGORA_POSTGRES_URL", "AGORA_NATS_URL",
		"AGORA_REDIS_URL", "AGORA_JWKS_URL", "AGORA_ADVERTISE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME",
		"AGORA_POSTGRES_URL_PAYMENTS"} {
		if !fc.env[want] {
			t.Errorf("env %s not found in the code", want)
		}
	}
	if fc.env["AGORA_TEST_POSTGRES_URL"] {
		t.Errorf("a test helper's variable counted as the binary's")
	}
	for _, c := range []string{"gateway", "identity", "catalog", "inventory", "ordering", "payments", "shipping", "bff"} {
		if !slices.Contains(fc.contexts, c) {
			t.Errorf("context %s not found in internal/server's Modules", c)
		}
	}
	if !fc.paths["/healthz"] || !fc.paths["/readyz"] {
		t.Errorf("operational paths = %v", fc.paths)
	}
	if len(fc.durables["AGORA_EVENTS"]) == 0 || fc.durables["AGORA_EVENTS"]["bff-popularity-0"] != "bff" {
		t.Errorf("durables = %v", fc.durables)
	}
	if _, ok := fc.durables["AGORA_CATALOG"]["catalog-cache"]; ok {
		t.Errorf("the ephemeral catalog-cache counted as durable")
	}
	t.Logf("contexts %v; addr %s; durables %v; retries %d × %v", fc.contexts, fc.addr, fc.durables, fc.maxRetries, fc.attemptTimeout)
}
