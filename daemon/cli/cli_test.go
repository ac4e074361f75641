package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/daemon/cli"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/worker"
)

// app is the demo's tasks as an app brings its own.
var app = daemon.App{
	Tasks:    demo.Tasks,
	Register: func(w *worker.Worker) error { demo.Register(w, nil); return nil },
}

// result is one run of the command line.
type result struct {
	code        int
	out, errOut string
}

func runCLI(ctx context.Context, args ...string) result {
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, app, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// ok runs args and fails the test unless they exit 0; it returns stdout.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(context.Background(), args...)
	if r.code != cli.ExitOK {
		t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.errOut)
	}
	return r.out
}

// fails runs args, wants exit code want and stderr holding every one of
// msgs, and returns stderr.
func fails(t *testing.T, want int, args []string, msgs ...string) string {
	t.Helper()
	r := runCLI(context.Background(), args...)
	if r.code != want {
		t.Fatalf("%s: exit %d, want %d\n%s%s", strings.Join(args, " "), r.code, want, r.out, r.errOut)
	}
	for _, m := range msgs {
		if !strings.Contains(r.errOut, m) {
			t.Fatalf("%s: stderr %q lacks %q", strings.Join(args, " "), r.errOut, m)
		}
	}
	// One prefix, whatever the error wrapped (job's sentinels say
	// "conveyor: " too).
	if !strings.HasPrefix(r.errOut, "conveyor: ") && !strings.Contains(r.errOut, "\nconveyor: ") || strings.Count(r.errOut, "conveyor: ") != 1 {
		t.Fatalf("%s: stderr %q, want one conveyor: prefix", strings.Join(args, " "), r.errOut)
	}
	return r.errOut
}

// newDB returns the path of a SQLite database that exists, and the
// backend on it for the test to look through.
func newDB(t *testing.T) (string, backends.Backend) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cli.db")
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return path, b
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"jobs", "-h"}, {"inspect", "pause", "-h"}, {"worker", "-h"}, {"help", "jobs"}} {
		r := runCLI(context.Background(), args...)
		if r.code != cli.ExitOK || !strings.Contains(r.out+r.errOut, "Usage") && !strings.Contains(r.out+r.errOut, "Usage of") {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.out, r.errOut)
		}
	}
	if out := ok(t, "-h"); !strings.Contains(out, "jobs") || !strings.Contains(out, "--db") {
		t.Fatalf("help lists no jobs command or --db:\n%s", out)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	fails(t, cli.ExitUsage, []string{"enqeue"}, `unknown command "enqeue"`, "did you mean enqueue?")
	fails(t, cli.ExitUsage, []string{"jobs", "lst"}, `unknown command "lst" for "conveyor jobs"`)
	fails(t, cli.ExitUsage, []string{"inspect"}, "needs a command")
	fails(t, cli.ExitUsage, []string{"jobs", "list", "--bogus"}, "unknown flag: --bogus")
	fails(t, cli.ExitUsage, []string{"jobs", "show"}, "accepts 1 arg(s), received 0")
	fails(t, cli.ExitUsage, []string{"jobs", "list", "--state", "sleeping"}, "sleeping")
	// The worker daemon's own checks, with its exit code for bad
	// configuration.
	fails(t, cli.ExitUsage, []string{"worker", "-queues", ""}, `-queues "": no queue named`)
	fails(t, cli.ExitUsage, []string{"worker", "-concurrency", "-5"}, `-concurrency "-5": must be above 0`)
	fails(t, cli.ExitUsage, []string{"migrate", "--db", "x.db"}, "works on PostgreSQL")
}

// A reading or steering command never creates a database: a mistyped
// path is an error and leaves no file behind.
func TestReadOnlyCommandsCreateNoDatabase(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{
		{"inspect", "queues"}, {"jobs", "list"}, {"jobs", "show", "x"}, {"inspect", "pause", "default"},
		{"schedule", "list"}, {"inspect", "bound"}, {"dashboard"},
	} {
		fails(t, cli.ExitError, append(args, "--db", missing), "no such database", "typo.db does not exist")
		fails(t, cli.ExitError, append(args, "--db", "sqlite:"+missing), "no such database")
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("%v created %s: %v", args, missing, err)
		}
	}
	fails(t, cli.ExitError, []string{"inspect", "queues", "--db", "mysql://db/app"}, `unknown scheme "mysql"`)
}

// Flags go anywhere, with one dash or two, and --db defaults to
// $CONVEYOR_DB: each spelling reads the same database.
func TestFlagsAnywhere(t *testing.T) {
	db, _ := newDB(t)
	ok(t, "enqueue", "demo.greet", `{"name":"ada"}`, "--db", db)
	t.Setenv("CONVEYOR_DB", db)
	for _, args := range [][]string{
		{"--db", db, "inspect", "queues"},
		{"inspect", "--db", db, "queues"},
		{"inspect", "queues", "--db", db},
		{"inspect", "queues", "-db", db},
		{"inspect", "queues", "-db=" + db},
		{"inspect", "queues"},
	} {
		if out := ok(t, args...); !hasLine(out, "default", "false", "1") {
			t.Fatalf("%v:\n%s", args, out)
		}
	}
}

func TestVersion(t *testing.T) {
	if out := ok(t, "version"); !strings.HasPrefix(out, "conveyor ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %q", out)
	}
	if out := ok(t, "version", "--json"); !strings.Contains(out, `"version":`) {
		t.Fatalf("version --json: %q", out)
	}
}

// hasLine reports whether some line starts with the given fields.
func hasLine(text string, fields ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}
