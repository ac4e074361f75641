package daemon_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/conveyorhq/conveyor/daemon"
)

// CheckConfig refuses a file with a key the daemon does not know, naming
// the key and its line.
func ExampleCheckConfig() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "worker.toml")
	_ = os.WriteFile(path, []byte("db = \"app.db\"\nconcurency = 8\n"), 0o600)

	err := daemon.CheckConfig(path)
	fmt.Println(errors.Is(err, daemon.ErrConfig), daemon.ExitCode(err))
	msg, _, _ := strings.Cut(strings.TrimPrefix(err.Error(), "daemon: bad configuration: "+path), " (")
	fmt.Println(msg)
	// Output:
	// true 2
	// :2: unknown key "concurency"
}

// Defaults are what a key left out of every source is.
func ExampleDefaults() {
	c := daemon.Defaults()
	fmt.Println(c.DB, c.Queues[0].Name, c.Concurrency, c.Lease, c.Drain, c.LogFormat, c.LogLevel)
	// Output: conveyor.db default 10 30s 30s text INFO
}
