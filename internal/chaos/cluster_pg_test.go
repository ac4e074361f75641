package chaos_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestClusterPostgres runs the chaos workload on the PostgreSQL primary
// and its streaming replica through a multi-host URL with
// target_session_attrs=read-write, while the primary is stopped in
// immediate mode and the replica promoted, twice (the old primary comes
// back as the new one's replica in between). With synchronous replication
// nothing acknowledged may be lost; without it the run measures how many
// acknowledged jobs the failovers lost, and how far behind the replica was.
// The two share the pair, so they run one after the other.
func TestClusterPostgres(t *testing.T) {
	t.Parallel()
	url := clusterEnv(t, "CONVEYOR_POSTGRES_HA_URL")
	dir := clusterEnv(t, "CONVEYOR_POSTGRES_HA_DIR")
	ports, err := hostPorts(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		sync bool
	}{{"synchronous", true}, {"asynchronous", false}} {
		t.Run(mode.name, func(t *testing.T) {
			pair := &pgPair{t: t, dir: dir, ports: ports, sync: mode.sync}
			primary, _ := pair.roles()
			pair.setSync(primary)
			t.Cleanup(func() { // leave the pair asynchronous, as clusters.sh starts it
				pair.sync = false
				if p, _ := pair.roles(); p != 0 {
					pair.setSync(p)
				}
			})
			// A schema of its own: the pair outlives the run.
			sp := spec{Kind: "postgres", URL: url + "&pool_max_conns=16", Prefix: strings.ReplaceAll(uniquePrefix(), "-", "_")}
			t.Cleanup(func() {
				if p, _ := pair.roles(); p != 0 {
					if err := pair.query(p, "DROP SCHEMA "+pgx.Identifier{sp.Prefix}.Sanitize()+" CASCADE"); err != nil {
						t.Logf("dropping schema %s: %v", sp.Prefix, err)
					}
				}
			})
			runChaos(t, chaosCase{spec: sp, server: pair, corrupt: pgCorruptors(url, sp.Prefix), lossAllowed: !mode.sync})
			t.Logf("replica behind the primary at each stop: %v bytes of WAL", pair.behind)
		})
	}
}

// hostPorts is the ports of a multi-host PostgreSQL URL's hosts.
func hostPorts(url string) ([]int, error) {
	_, rest, _ := strings.Cut(url, "://")
	rest = rest[strings.LastIndexByte(rest, '@')+1:]
	hosts, _, _ := strings.Cut(rest, "/")
	var ports []int
	for _, h := range strings.Split(hosts, ",") {
		_, p, _ := strings.Cut(h, ":")
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		ports = append(ports, n)
	}
	return ports, nil
}
