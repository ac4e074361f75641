package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/conveyorhq/conveyor"

type pkg struct {
	ImportPath string
	Name       string
	Imports    []string
}

// packages lists the packages of every module in the workspace (go.work)
// with their non-test imports.
func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Name,Imports", mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var ps []pkg
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if len(ps) < 10 {
		t.Fatalf("go list found %d packages; is the module path %s?", len(ps), mod)
	}
	return ps
}

// The rules of docs/architecture.md, checked on every package's imports.
func TestImportRules(t *testing.T) {
	rules := []struct {
		name    string
		applies func(pkg) bool
		banned  func(imp string) bool
	}{{
		name:    "job is the leaf: it imports nothing of ours",
		applies: func(p pkg) bool { return p.ImportPath == mod+"/job" },
		banned:  func(imp string) bool { return strings.HasPrefix(imp, mod+"/") },
	}, {
		name:    "backends implement the contract and import neither the client nor the worker",
		applies: func(p pkg) bool { return strings.HasPrefix(p.ImportPath, mod+"/backends") },
		banned: func(imp string) bool {
			return slices.Contains([]string{mod + "/queue", mod + "/worker", mod + "/scheduler", mod + "/dashboard"}, imp)
		},
	}, {
		// The engine hooks into a worker through its public Observer and
		// Middleware: the worker knows nothing of workflows.
		name:    "the worker does not import workflow",
		applies: func(p pkg) bool { return p.ImportPath == mod+"/worker" },
		banned:  func(imp string) bool { return imp == mod+"/workflow" },
	}, {
		name:    "OS signals are handled only by binaries (package main) and the daemon package",
		applies: func(p pkg) bool { return p.Name != "main" && p.ImportPath != mod+"/daemon" },
		banned:  func(imp string) bool { return imp == "os/signal" },
	}, {
		// backendtest and schedulertest are suites published for the
		// backends of other modules (as riverdrivertest is): test packages
		// by design, named so.
		name: "production packages import no test helpers",
		applies: func(p pkg) bool {
			return !strings.HasPrefix(p.ImportPath, mod+"/internal/") && !testSupport(p.ImportPath)
		},
		banned: func(imp string) bool {
			return imp == "testing" || imp == mod+"/internal/testenv" || imp == mod+"/internal/faulttest" || testSupport(imp)
		},
	}}
	for _, p := range packages(t) {
		for _, r := range rules {
			if !r.applies(p) {
				continue
			}
			for _, imp := range p.Imports {
				if r.banned(imp) {
					t.Errorf("%s imports %s: %s", p.ImportPath, imp, r.name)
				}
			}
		}
	}
}

// testSupport tells the suites other modules' tests import.
func testSupport(path string) bool {
	return strings.HasPrefix(path, mod+"/") && strings.HasSuffix(path, "test")
}

// The library's module requires only what the library uses: the server
// backends' drivers, the benchmark's peers and the browser test's chromedp
// live in modules of their own (go.work), so an app importing queue is
// never moved to another version of them by minimal version selection.
func TestLibraryModuleCarriesOnlyTheLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.GoMod}}", mod).Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	gomod, err := os.ReadFile(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{
		"github.com/jackc/pgx", "github.com/redis/go-redis", "github.com/rabbitmq/amqp091-go",
		"github.com/hibiken/asynq", "github.com/riverqueue/river", "github.com/chromedp/",
	} {
		if bytes.Contains(gomod, []byte(banned)) {
			t.Errorf("the library's go.mod requires %s: move what needs it into its own module", banned)
		}
	}
}
