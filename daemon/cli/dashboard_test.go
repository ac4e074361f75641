package cli_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/daemon/cli"
)

// The dashboard command serves the API on the address it prints, the
// producer HTTP API at /v1/ for the app's tasks, and stops cleanly when its
// context ends.
func TestDashboardCommand(t *testing.T) {
	db, _ := newDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, app, []string{"serve", "--db", db, "--addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Fields(line)[2] // "dashboard on http://127.0.0.1:PORT/ ..."
	for _, path := range []string{"api/queues", "v1/openapi.json"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %s", base+path, res.Status)
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("dashboard did not stop cleanly: exit %d", code)
	}
}

func TestConfigCheckAndPing(t *testing.T) {
	db, _ := newDB(t)
	if out := ok(t, "ping", "--db", db); out != "ok\n" {
		t.Fatalf("ping: %q", out)
	}
	ok(t, "ping", "memory:")
	fails(t, cli.ExitError, []string{"ping", "mysql://db/app"}, `unknown scheme "mysql"`)
	fails(t, cli.ExitUsage, []string{"config", "check", "/nonexistent/worker.toml"}, "worker.toml")
}
