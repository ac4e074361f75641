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

// Chromium is the path of the Chromium binary browser tests drive.
func Chromium(t testing.TB) string {
	return need(t, "CONVEYOR_CHROMIUM", "Chromium (Debian package chromium)")
}

// Python is Debian's python3 with celery, kombu, redis and requests, which
// scripts/test installs (scripts/lib/python.sh).
func Python(t testing.TB) string {
	return need(t, "CONVEYOR_PYTHON", "Python 3 with celery and requests")
}

// RabbitMQURL is the amqp:// URL of the shared RabbitMQ node.
func RabbitMQURL(t testing.TB) string { return need(t, "CONVEYOR_RABBITMQ_URL", "a RabbitMQ server") }

// RabbitMQNode is the Erlang node name of the shared RabbitMQ, for
// rabbitmqctl.
func RabbitMQNode(t testing.TB) string { return need(t, "CONVEYOR_RABBITMQ_NODE", "a RabbitMQ server") }

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

// Postgres is a private PostgreSQL server in a temporary directory, for
// tests that restart or crash the server under running workers.
type Postgres struct {
	URL      string
	dir      string
	port     int
	settings []string
	t        testing.TB
}

// pgBin returns the path of a PostgreSQL server program.
func pgBin(t testing.TB, name string) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		t.Fatalf("%s not found under /usr/lib/postgresql: install the postgresql package (scripts/test does)", name)
	}
	return matches[len(matches)-1]
}

// asPostgres runs a server program as the postgres user when we are root,
// since PostgreSQL refuses to run as root.
func asPostgres(t testing.TB, args ...string) *exec.Cmd {
	if os.Geteuid() != 0 {
		return exec.Command(args[0], args[1:]...)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return exec.Command("su", "postgres", "-s", "/bin/sh", "-c", strings.Join(quoted, " "))
}

// StartPostgres initialises and starts a private server on a free port,
// with settings ("name=value", each passed as -c), and stops it when the
// test ends.
func StartPostgres(t testing.TB, settings ...string) *Postgres {
	t.Helper()
	PostgresURL(t) // the same precondition as the shared server
	dir, err := os.MkdirTemp("", "conveyor-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	p := &Postgres{dir: dir, port: FreePort(t), settings: settings, t: t}
	p.URL = fmt.Sprintf("postgres://conveyor@127.0.0.1:%d/postgres", p.port)
	if out, err := asPostgres(t, pgBin(t, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "conveyor", "-A", "trust").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	p.Start()
	t.Cleanup(func() { _ = p.ctl("stop", "-m", "immediate").Run() })
	return p
}

func (p *Postgres) ctl(action string, extra ...string) *exec.Cmd {
	args := []string{pgBin(p.t, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log"), "-w", action}
	return asPostgres(p.t, append(args, extra...)...)
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", p.port, p.dir)
	for _, s := range p.settings {
		opts += " -c " + s
	}
	if out, err := p.ctl("start", "-o", opts).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("pg_ctl start: %v: %s %s", err, out, log)
	}
}

// Stop shuts the server down (fast mode: connections are cut, committed
// work is kept).
func (p *Postgres) Stop() {
	p.t.Helper()
	if out, err := p.ctl("stop", "-m", "fast").CombinedOutput(); err != nil {
		p.t.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
}

// Crash stops the server in immediate mode, as a crash would: no shutdown
// checkpoint, and what its WAL buffers held unwritten is lost.
func (p *Postgres) Crash() {
	p.t.Helper()
	if out, err := p.ctl("stop", "-m", "immediate").CombinedOutput(); err != nil {
		p.t.Fatalf("pg_ctl stop -m immediate: %v: %s", err, out)
	}
}

// WaitFor polls cond until it holds, failing the test after limit. The
// conditions it serves are jobs finishing in other goroutines or processes
// against a server, which announces nothing a test could wait on.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
