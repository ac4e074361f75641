package daemon

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/worker"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func loadArgs(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	src, err := parseFlags("worker", args, io.Discard, envOf(env))
	if err != nil {
		return Config{}, err
	}
	return src.load()
}

// Each key comes from the flag if given, else the environment, else the
// file, else its default.
func TestConfigPrecedence(t *testing.T) {
	path := writeFile(t, `
db = "file.db"
concurrency = 4
lease = "10s"
queues = ["email:2:3", "default"]
log-level = "warn"
strict = true
`)
	env := map[string]string{"CONVEYOR_CONFIG": path, "CONVEYOR_CONCURRENCY": "6", "CONVEYOR_LEASE": "20s", "CONVEYOR_DRAIN": "5s"}
	c, err := loadArgs(t, []string{"-concurrency", "8"}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.DB = "file.db"                                                                               // file
	want.Concurrency = 8                                                                              // flag over env over file
	want.Lease = 20 * time.Second                                                                     // env over file
	want.Drain = 5 * time.Second                                                                      // env over default
	want.Queues = []worker.QueueConfig{{Name: "email", Concurrency: 2, Weight: 3}, {Name: "default"}} // file
	want.LogLevel = slog.LevelWarn
	want.StrictPriority = true
	if diff := diffConfigs(want, c); len(diff) > 0 {
		t.Errorf("differences from the expected configuration: %v", diff)
	}
	if d := Defaults(); d.DB != "conveyor.db" || d.Concurrency != 10 || d.Lease != 30*time.Second || d.Queues[0].Name != "default" {
		t.Errorf("defaults: %+v", d)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, file string
		args       []string
		env        map[string]string
		want       string
	}{
		{name: "unknown key", file: "db = \"x.db\"\n\nconcurency = 3\n", want: `:3: unknown key "concurency"`},
		{name: "unknown table", file: "db = \"x.db\"\n[queue.email]\nweight = 2\n", want: `:2: unknown key "queue`},
		{name: "wrong type", file: "db = \"x.db\"\nconcurrency = \"eight\"\n", want: `:2: key concurrency: want an integer, got string eight`},
		{name: "bad list item", file: "queues = [\"email\", 3]\n", want: `:1: key queues: item 2 (3)`},
		{name: "bad value", file: "lease = \"forever\"\n", want: `:1: key lease: not a duration`},
		{name: "syntax", file: "db = \"x.db\nconcurrency = 2\n", want: `:1: `},
		{name: "missing file", args: []string{"-config", "/nonexistent/worker.toml"}, want: `/nonexistent/worker.toml: no such file`},
		{name: "bad env", env: map[string]string{"CONVEYOR_LOG_FORMAT": "xml"}, want: `environment CONVEYOR_LOG_FORMAT="xml": "xml" is neither text nor json`},
		{name: "bad flag", args: []string{"-queues", "a:b"}, want: `flag -queues "a:b": "a:b": concurrency "b"`},
		{name: "unknown flag", args: []string{"-concurency", "2"}, want: `flag provided but not defined: -concurency`},
		{name: "bad fair weight", args: []string{"-fair", "default:acme=0"}, want: `"acme=0" is not GROUP=WEIGHT`},
		{name: "fair queue not worked", args: []string{"-fair", "reports"}, want: `fair queue "reports" is not one of the queues (default)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "-config", writeFile(t, tc.file))
			}
			env := tc.env
			if env == nil {
				env = map[string]string{}
			}
			_, err := loadArgs(t, args, env)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want one line with %q wrapping ErrConfig", err, tc.want)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	if err := CheckConfig(writeFile(t, "db = \"a.db\"\nqueues = [\"a:2\", \"b::4\"]\nbreakers = [\"smtp:10:1m\"]\nmax-rss = \"512MiB\"\n")); err != nil {
		t.Errorf("a good file: %v", err)
	}
	if err := CheckConfig(writeFile(t, "processes = -1\n")); err == nil || !strings.Contains(err.Error(), ":1: key processes: must not be negative") {
		t.Errorf("a negative count: %v", err)
	}
}

// The package doc's table is the schema users read: it lists every key
// with its environment variable and whether SIGHUP applies it.
func TestDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		live := map[bool]string{true: "live", false: "restart"}[s.live]
		found := false
		for line := range strings.SplitSeq(string(doc), "\n") {
			f := strings.Fields(strings.TrimPrefix(line, "//"))
			if len(f) == 5 && f[0] == s.key && f[1] == envName(s.key) && f[4] == live {
				found = true
			}
		}
		if !found {
			t.Errorf("doc.go's table has no row for %s (%s, %s)", s.key, envName(s.key), live)
		}
	}
}

// The deploy example's config file is one the daemon accepts.
func TestDeployExampleConfig(t *testing.T) {
	if err := CheckConfig("../examples/deploy/worker.toml"); err != nil {
		t.Error(err)
	}
}

// The fair key makes the named queues fair, with their groups' weights,
// in what the worker is given; the others stay as they are.
func TestFairQueuesReachTheWorker(t *testing.T) {
	path := writeFile(t, "queues = [\"reports\", \"email:2\"]\nfair = [\"reports:enterprise=3:acme=2\"]\n")
	c, err := loadArgs(t, []string{"-config", path}, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	qs := c.workerQueues()
	if !qs[0].Fair || qs[0].FairWeights["enterprise"] != 3 || qs[0].FairWeights["acme"] != 2 || qs[1].Fair {
		t.Fatalf("worker queues %+v: want reports fair with enterprise 3 and acme 2, email not", qs)
	}
	if got := FormatFair(c.Fair); got != "reports:acme=2:enterprise=3" {
		t.Fatalf("FormatFair = %q", got)
	}
}
