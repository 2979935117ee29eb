package app_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/config"
)

const (
	configPkg = "github.com/visionserve/visionserve/internal/config"
	appPkg    = "github.com/visionserve/visionserve/internal/app"
)

// No test may listen on a fixed port: the quick start leaves a server on
// the default ports (8080, 9090, 9091) while `make test` runs, and two
// test binaries run at once. This reads every test file of the module and
// fails on
//   - a function that starts a server (app.New) from config.Default() or
//     app.DefaultOptions() without setting all three listener addresses
//     (each default is a fixed port);
//   - a loopback or wildcard address literal on a default port;
//   - a net.Listen-like call given an address literal with a fixed port.
//
// Listen on 127.0.0.1:0 (apptest.Start does) or turn the listener off ("").
func TestNoTestListensOnAFixedPort(t *testing.T) {
	root := moduleRoot(t)
	var problems []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		for _, p := range fixedPorts(t, path) {
			problems = append(problems, rel+":"+p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("tests that listen on a fixed port (use 127.0.0.1:0, or \"\" to turn a listener off):\n  %s", strings.Join(problems, "\n  "))
	}
}

// The check itself finds each kind of fixed port.
func TestFixedPortsFindsEachKind(t *testing.T) {
	src := `package x_test

import (
	"net"
	"testing"

	"github.com/visionserve/visionserve/internal/app"
	cfgpkg "github.com/visionserve/visionserve/internal/config"
)

func TestDefaults(t *testing.T) {
	cfg := cfgpkg.Default()
	cfg.Server.Addr, cfg.Server.AdminAddr = "127.0.0.1:0", ""
	app.New(app.Options{Config: cfg})
}

func TestAllSet(t *testing.T) {
	cfg := cfgpkg.Default()
	cfg.Server.Addr, cfg.Server.GRPCAddr, cfg.Server.AdminAddr = "127.0.0.1:0", "", ""
	app.New(app.Options{Config: cfg})
}

func TestLiteral(t *testing.T) { _ = "localhost:9091" }

func TestListen(t *testing.T) { net.Listen("tcp", ":7777") }

func TestFree(t *testing.T) { net.Listen("tcp", "127.0.0.1:0"); _ = ":8080" }
`
	path := filepath.Join(t.TempDir(), "x_test.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := fixedPorts(t, path)
	want := []string{"11: TestDefaults starts a server from the default configuration and leaves GRPCAddr on its fixed port",
		"23: \"localhost:9091\" is a default listener port", "25: net.Listen on the fixed address \":7777\""}
	if !slices.Equal(got, want) {
		t.Fatalf("found\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// defaultPorts are the ports of the default configuration's listeners.
func defaultPorts(t *testing.T) []string {
	s := config.Default().Server
	var ports []string
	for _, addr := range []string{s.Addr, s.GRPCAddr, s.AdminAddr} {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			ports = append(ports, port)
		} else {
			t.Fatalf("default address %q: %v", addr, err)
		}
	}
	return ports
}

// listenFuncs take an address to listen on as their second argument
// (net.Listen) or first (http.ListenAndServe).
var listenFuncs = map[string]int{
	"net.Listen": 1, "net.ListenPacket": 1, "tls.Listen": 1,
	"http.ListenAndServe": 0, "http.ListenAndServeTLS": 0,
}

// fixedPorts reports, as "line: problem", where the test file at path
// listens on a fixed port.
func fixedPorts(t *testing.T, path string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]string{} // local name -> path
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	defaults := defaultPorts(t)
	var out []string
	report := func(pos token.Pos, format string, args ...any) {
		out = append(out, strconv.Itoa(fset.Position(pos).Line)+": "+fmt.Sprintf(format, args...))
	}
	// qualified returns "pkgpath.Name" for a selector on an imported package.
	qualified := func(e ast.Expr) string {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return ""
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok || imports[id.Name] == "" {
			return ""
		}
		return imports[id.Name] + "." + sel.Sel.Name
	}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		var fromDefaults, starts bool
		set := map[string]bool{}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch q := qualified(n.Fun); q {
				case configPkg + ".Default", appPkg + ".DefaultOptions":
					fromDefaults = true
				case appPkg + ".New":
					starts = true
				default:
					short := q[strings.LastIndex(q, "/")+1:]
					if i, ok := listenFuncs[short]; ok && len(n.Args) > i {
						if lit, ok := n.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							addr, _ := strconv.Unquote(lit.Value)
							if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" {
								report(n.Pos(), "%s on the fixed address %q", short, addr)
							}
						}
					}
				}
			case *ast.AssignStmt:
				for _, lhs := range n.Lhs {
					if sel, ok := lhs.(*ast.SelectorExpr); ok {
						set[sel.Sel.Name] = true
					}
				}
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					break
				}
				addr, _ := strconv.Unquote(n.Value)
				host, port, err := net.SplitHostPort(addr)
				if err == nil && slices.Contains(defaults, port) && slices.Contains([]string{"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}, host) {
					report(n.Pos(), "%q is a default listener port", addr)
				}
			}
			return true
		})
		if fromDefaults && starts {
			for _, field := range []string{"Addr", "GRPCAddr", "AdminAddr"} {
				if !set[field] {
					report(fn.Pos(), "%s starts a server from the default configuration and leaves %s on its fixed port", fn.Name.Name, field)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		la, _ := strconv.Atoi(a[:strings.Index(a, ":")])
		lb, _ := strconv.Atoi(b[:strings.Index(b, ":")])
		return la - lb
	})
	return out
}
