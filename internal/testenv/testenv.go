package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// need returns the value of the environment variable that names a server,
// failing the test (or skipping it when CONVEYOR_SKIP_SERVERS=1) if unset.
func need(t testing.TB, env, what string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: this test needs %s; run scripts/test, which starts it", env, what)
	if os.Getenv("CONVEYOR_SKIP_SERVERS") == "1" {
		t.Skip(msg + " (skipped: CONVEYOR_SKIP_SERVERS=1)")
	}
	t.Fatal(msg)
	return ""
}

// RedisAddr is the host:port of the shared Redis server.
func RedisAddr(t testing.TB) string { return need(t, "CONVEYOR_REDIS_ADDR", "a Redis server") }

// RedisCluster is the host:port list of the shared 3-master Redis Cluster.
func RedisCluster(t testing.TB) []string {
	return strings.Split(need(t, "CONVEYOR_REDIS_CLUSTER", "a Redis Cluster"), ",")
}

// PostgresURL is the URL of the shared PostgreSQL database.
func PostgresURL(t testing.TB) string { return need(t, "CONVEYOR_POSTGRES_URL", "a PostgreSQL server") }

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis is a private redis-server with append-only persistence, for tests
// that restart the server under running workers.
type Redis struct {
	Addr string
	dir  string
	port int
	t    testing.TB
}

// StartRedis starts a private redis-server on a free port, and stops it
// when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	RedisAddr(t) // the same precondition as the shared server
	r := &Redis{dir: t.TempDir(), port: FreePort(t), t: t}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.Start()
	t.Cleanup(func() { _ = exec.Command("redis-cli", "-p", strconv.Itoa(r.port), "shutdown", "nosave").Run() })
	return r
}

// Start starts the server (again) on its port and directory and waits
// until it answers.
func (r *Redis) Start() {
	r.t.Helper()
	out, err := exec.Command("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1",
		"--port", strconv.Itoa(r.port), "--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--logfile", filepath.Join(r.dir, "redis.log")).CombinedOutput()
	if err != nil {
		r.t.Fatalf("redis-server: %v: %s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(r.port), "ping").Output()
		if strings.TrimSpace(string(out)) == "PONG" {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s does not answer: %s", r.Addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down cleanly (its append-only file is flushed).
func (r *Redis) Stop() {
	r.t.Helper()
	_ = exec.Command("redis-cli", "-p", strconv.Itoa(r.port), "shutdown").Run()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", r.Addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("redis-server on %s did not stop", r.Addr)
}
