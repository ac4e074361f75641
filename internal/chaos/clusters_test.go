package chaos_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// The clusters scripts/lib/clusters.sh starts (start_clusters) for the
// failover tests. Each test puts its cluster back as it found it (the
// killed master a replica again, the stopped node running, the old
// primary a streaming replica of the new one), so they can run again.

// clusterEnv is the value of a cluster's environment variable; without
// it the test fails (or skips with CONVEYOR_SKIP_SERVERS=1), as
// testenv does for the single servers.
func clusterEnv(t testing.TB, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: this test needs the clusters of scripts/lib/clusters.sh (start_clusters); scripts/test starts them", name)
	if os.Getenv("CONVEYOR_SKIP_SERVERS") == "1" {
		t.Skip(msg + " (skipped: CONVEYOR_SKIP_SERVERS=1)")
	}
	t.Fatal(msg)
	return ""
}

// redisInfo is one section of a node's INFO as key -> value.
func redisInfo(ctx context.Context, addr, section string) (map[string]string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// slotOwner is the address of the master serving slot, as node addr sees
// the cluster, and whether that node says the cluster is ok.
func slotOwner(ctx context.Context, addr string, slot int64) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return "", err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return "", fmt.Errorf("%s: cluster state not ok", addr)
	}
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("%s: no node serves slot %d", addr, slot)
}

// redisFailover kills the master of one queue's slot with SIGKILL, waits
// until the cluster has promoted its replica (cluster-node-timeout is 2 s
// in clusters.sh), and on Start restarts the killed node from its own
// configuration file, where it rejoins as the new master's replica.
type redisFailover struct {
	t      testing.TB
	addrs  []string
	tag    string // the hash tag (queue name) whose master is killed
	victim string // the killed node's address, until Start
	conf   string // its configuration file
	took   []time.Duration
}

func (f *redisFailover) slot(ctx context.Context) int64 {
	for _, a := range f.addrs {
		c := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		n, err := c.ClusterKeySlot(ctx, "{"+f.tag+"}").Result()
		c.Close()
		if err == nil {
			return n
		}
	}
	f.t.Fatalf("no node of %v answers CLUSTER KEYSLOT", f.addrs)
	return 0
}

// owner is the master of the tag's slot as the first answering node
// other than skip sees it.
func (f *redisFailover) owner(ctx context.Context, slot int64, skip string) (string, error) {
	var last error
	for _, a := range f.addrs {
		if a == skip {
			continue
		}
		o, err := slotOwner(ctx, a, slot)
		if err == nil {
			return o, nil
		}
		last = err
	}
	return "", last
}

func (f *redisFailover) Crash() {
	f.t.Helper()
	ctx := context.Background()
	slot := f.slot(ctx)
	master, err := f.owner(ctx, slot, "")
	if err != nil {
		f.t.Fatalf("the master of {%s}: %v", f.tag, err)
	}
	info, err := redisInfo(ctx, master, "server")
	if err != nil {
		f.t.Fatalf("INFO server on %s: %v", master, err)
	}
	pid, _ := strconv.Atoi(info["process_id"])
	f.victim, f.conf = master, info["config_file"]
	if pid == 0 || f.conf == "" {
		f.t.Fatalf("%s names no process or configuration file: %v", master, info)
	}
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		f.t.Fatalf("kill -9 %d (%s): %v", pid, master, err)
	}
	log := filepath.Join(filepath.Dir(f.conf), "redis.log")
	waitAnswers(f.t, "a replica of "+master+" promoted", func() error {
		o, err := f.owner(ctx, slot, master)
		if err == nil && o == master {
			err = fmt.Errorf("slot %d still on the killed %s", slot, master)
		}
		return err
	}, log)
	f.took = append(f.took, time.Since(start))
	f.t.Logf("redis failover: killed master %s of slot %d, replica promoted after %s", master, slot, time.Since(start).Round(time.Millisecond))
}

func (f *redisFailover) Start() {
	f.t.Helper()
	ctx := context.Background()
	if out, err := exec.Command("redis-server", f.conf).CombinedOutput(); err != nil {
		f.t.Fatalf("redis-server %s: %v: %s", f.conf, err, out)
	}
	waitAnswers(f.t, f.victim+" back as a linked replica", func() error {
		r, err := redisInfo(ctx, f.victim, "replication")
		if err != nil {
			return err
		}
		if r["role"] != "slave" || r["master_link_status"] != "up" {
			return fmt.Errorf("role %s, link %s", r["role"], r["master_link_status"])
		}
		_, err = slotOwner(ctx, f.victim, 0)
		return err
	}, filepath.Join(filepath.Dir(f.conf), "redis.log"))
}

// rabbitCluster stops one node's RabbitMQ application (every connection
// to it drops; the quorum queues' members on the other two keep a
// majority and elect a leader) and starts it again. The first stop takes
// the node leading the main queue, the next ones the node most of this
// run's processes are connected to. After each stop it waits until every
// process that was connected to the stopped node, and is still alive, is
// connected to another one: what the URL of several addresses is for.
type rabbitCluster struct {
	t       testing.TB
	nodes   []string // conveyor-c<AMQP port>@localhost, as clusters.sh names them
	epmd    string
	queue   string // the main work queue's name
	stopped string // the node stopped last
	moved   int    // processes seen reconnected to a live node after a stop
}

// port is the AMQP port of a node, from its name.
func (r *rabbitCluster) port(node string) string {
	name, _, _ := strings.Cut(node, "@")
	return strings.TrimPrefix(name, "conveyor-c")
}

// conveyorConn matches the connection name amqpbackend gives its
// connections, "conveyor <host>/<pid>".
var conveyorConn = regexp.MustCompile(`"conveyor [^"/]*/([0-9]+)"`)

// conns maps the pid of every process with a Conveyor connection to the
// AMQP ports it is connected to, as a running node lists the cluster's
// connections.
func (r *rabbitCluster) conns() (map[int][]string, error) {
	var last error
	for _, n := range r.nodes {
		if n == r.stopped {
			continue
		}
		out, err := r.ctl(n, "list_connections", "--no-table-headers", "port", "client_properties")
		if err != nil {
			last = err
			continue
		}
		m := map[int][]string{}
		for _, line := range strings.Split(out, "\n") {
			port, props, _ := strings.Cut(strings.TrimSpace(line), "\t")
			if sm := conveyorConn.FindStringSubmatch(props); sm != nil {
				pid, _ := strconv.Atoi(sm[1])
				m[pid] = append(m[pid], port)
			}
		}
		return m, nil
	}
	return nil, last
}

func (r *rabbitCluster) Crash() {
	r.t.Helper()
	before, err := r.conns()
	if err != nil {
		r.t.Fatal(err)
	}
	victim := ""
	if r.stopped == "" {
		if f, err := r.queueInfo(r.nodes[0], "leader"); err == nil && len(f) == 1 {
			victim = f[0]
		}
	}
	if victim == "" { // the node with the most of this run's connections
		most := -1
		for _, n := range r.nodes {
			c := 0
			for _, ports := range before {
				c += strings.Count(strings.Join(ports, " "), r.port(n))
			}
			if c > most {
				victim, most = n, c
			}
		}
	}
	if _, err := r.ctl(victim, "stop_app"); err != nil {
		r.t.Fatal(err)
	}
	r.stopped = victim
	var on []int // the processes that were connected to the victim
	for pid, ports := range before {
		if slices.Contains(ports, r.port(victim)) {
			on = append(on, pid)
		}
	}
	start := time.Now()
	waitAnswers(r.t, "the stopped node's clients on live nodes", func() error {
		now, err := r.conns()
		if err != nil {
			return err
		}
		for _, pid := range on {
			if syscall.Kill(pid, 0) != nil {
				continue // killed meanwhile: nothing to reconnect
			}
			if len(now[pid]) == 0 || slices.Contains(now[pid], r.port(victim)) {
				return fmt.Errorf("process %d not connected to a live node yet", pid)
			}
		}
		return nil
	}, "")
	r.moved += len(on)
	r.t.Logf("rabbitmq: stopped node %s; %d processes connected to it reconnected elsewhere within %s",
		victim, len(on), time.Since(start).Round(time.Millisecond))
}

func (r *rabbitCluster) ctl(node string, args ...string) (string, error) {
	cmd := exec.Command("rabbitmqctl", append([]string{"-q", "-n", node}, args...)...)
	cmd.Env = append(os.Environ(), "ERL_EPMD_PORT="+r.epmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl -n %s %v: %w: %s", node, args, err, out)
	}
	return string(out), nil
}

// queueInfo is the named columns of the main queue as node sees it.
func (r *rabbitCluster) queueInfo(node string, cols ...string) ([]string, error) {
	out, err := r.ctl(node, append([]string{"list_queues", "--no-table-headers", "name"}, cols...)...)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == r.queue {
			return f[1:], nil
		}
	}
	return nil, fmt.Errorf("%s: no queue %s", node, r.queue)
}

func (r *rabbitCluster) Start() {
	r.t.Helper()
	for _, args := range [][]string{{"start_app"}, {"await_startup", "--timeout", "60"}} {
		if _, err := r.ctl(r.stopped, args...); err != nil {
			r.t.Fatal(err)
		}
	}
}

// pgPair is the primary and its streaming replica. Crash stops the
// primary in immediate mode (no shutdown checkpoint, no last WAL sent)
// and promotes the replica; Start makes the old primary a fresh replica
// of the new one (pg_basebackup), so the pair is whole again.
type pgPair struct {
	t     testing.TB
	dir   string // each node's data directory is dir/<port>
	ports []int
	sync  bool // synchronous_standby_names = '*' on the primary
	// behind is how many bytes of WAL the replica had not flushed when
	// each primary was stopped: what an asynchronous failover can lose.
	behind []int64
	down   int // the stopped node's port, until Start
}

func (p *pgPair) conn(ctx context.Context, port int) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pgx.Connect(ctx, fmt.Sprintf("postgres://conveyor@127.0.0.1:%d/conveyor", port))
}

func (p *pgPair) query(port int, sql string, dest ...any) error {
	ctx := context.Background()
	c, err := p.conn(ctx, port)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if len(dest) == 0 {
		_, err = c.Exec(ctx, sql)
		return err
	}
	return c.QueryRow(ctx, sql).Scan(dest...)
}

// roles returns the primary's port and the replica's.
func (p *pgPair) roles() (primary, replica int) {
	p.t.Helper()
	for _, port := range p.ports {
		var standby bool
		if err := p.query(port, "SELECT pg_is_in_recovery()", &standby); err != nil {
			p.t.Fatalf("PostgreSQL on port %d: %v", port, err)
		}
		if standby {
			replica = port
		} else {
			primary = port
		}
	}
	if primary == 0 || replica == 0 {
		p.t.Fatalf("PostgreSQL on ports %v: want one primary and one replica", p.ports)
	}
	return primary, replica
}

// setSync turns synchronous replication on or off on the primary.
func (p *pgPair) setSync(port int) {
	p.t.Helper()
	names := "''"
	if p.sync {
		names = "'*'"
	}
	for _, q := range []string{"ALTER SYSTEM SET synchronous_standby_names = " + names, "SELECT pg_reload_conf()"} {
		if err := p.query(port, q); err != nil {
			p.t.Fatalf("%s on port %d: %v", q, port, err)
		}
	}
}

func (p *pgPair) data(port int) string { return filepath.Join(p.dir, strconv.Itoa(port)) }

func (p *pgPair) ctl(port int, args ...string) error {
	out, err := asPostgres(append([]string{pgBin("pg_ctl"), "-D", p.data(port), "-l", p.data(port) + ".log", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v on port %d: %w: %s", args, port, err, out)
	}
	return nil
}

func (p *pgPair) Crash() {
	p.t.Helper()
	primary, replica := p.roles()
	var behind int64
	if err := p.query(primary, "SELECT coalesce(sum(pg_current_wal_lsn() - flush_lsn), 0)::bigint FROM pg_stat_replication", &behind); err != nil {
		p.t.Fatalf("replication lag on port %d: %v", primary, err)
	}
	p.behind = append(p.behind, behind)
	if err := p.ctl(primary, "stop", "-m", "immediate"); err != nil {
		p.t.Fatal(err)
	}
	if err := p.ctl(replica, "promote"); err != nil {
		p.t.Fatal(err)
	}
	p.setSync(replica)
	p.down = primary
	p.t.Logf("postgres: stopped primary %d (replica %d bytes behind), promoted %d", primary, behind, replica)
}

func (p *pgPair) Start() {
	p.t.Helper()
	start := time.Now()
	defer func() {
		p.t.Logf("postgres: %d rebuilt as a streaming replica in %s", p.down, time.Since(start).Round(time.Millisecond))
	}()
	old := p.down
	primary := p.ports[0]
	if primary == old {
		primary = p.ports[1]
	}
	if err := os.RemoveAll(p.data(old)); err != nil {
		p.t.Fatal(err)
	}
	if out, err := asPostgres(pgBin("pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(primary), "-U", "conveyor",
		"-D", p.data(old), "-X", "stream", "-R", "-c", "fast", "-d", "application_name=pg"+strconv.Itoa(old)).CombinedOutput(); err != nil {
		p.t.Fatalf("pg_basebackup from %d: %v: %s", primary, err, out)
	}
	if err := p.ctl(old, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", old, p.dir), "start"); err != nil {
		p.t.Fatal(err)
	}
	waitAnswers(p.t, fmt.Sprintf("the replica on %d streaming from %d", old, primary), func() error {
		var n int
		if err := p.query(primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'", &n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d replicas streaming", n)
		}
		return nil
	}, p.data(old)+".log")
}
