package daemon

import (
	"path/filepath"
	"strings"
	"testing"
)

// Ping makes a round trip through the backend a URL names; its error
// names the URL with the password hidden.
func TestPing(t *testing.T) {
	if err := Ping(t.Context(), filepath.Join(t.TempDir(), "ping.db")); err != nil {
		t.Errorf("a SQLite file: %v", err)
	}
	err := Ping(t.Context(), "redis://:hunter2@127.0.0.1:1/0")
	if err == nil || !strings.Contains(err.Error(), "backend redis://:xxxxx@127.0.0.1:1/0: ") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an unreachable server: %v", err)
	}
}
