package pgbackend

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
)

var _ backends.SlotReserver = (*Backend)(nil)

// ReserveSlots implements backends.SlotReserver in the reserve's own round
// trip: the rules' names are locked (advisory, in name order, held to the
// end of the reserve's transaction), then one statement counts the jobs
// running under the rules by name and key, picks due jobs as Reserve does,
// leases those their limit admits and postpones the rest. The locks make
// concurrent reserves of one limit count one after another: each
// statement starts after the last one's commit, so it counts the jobs that
// one leased. There are no slots to write or give back: a job counts
// while its row is running under a live lease.
func (b *Backend) ReserveSlots(ctx context.Context, p backends.ReserveSlotsParams) (backends.ReserveSlotsResult, error) {
	if err := p.Validate(); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	v := variant{fair: p.Fair}
	if len(p.Rules) > 0 {
		v.slots = &p
	}
	return b.reserveDue(ctx, p.ReserveParams, v)
}

// slotLockPrefix prefixes the advisory lock keys of the rules' names.
const slotLockPrefix = "conveyor-slots:"

// slotsPlan keeps the count of running jobs off bitmap scans for the rest
// of the reserve's transaction. The count walks jobs_leases, whose entries
// for jobs no longer running stay until a vacuum: a plain index scan
// marks them dead as it passes, so the next reserve skips them, where a
// bitmap scan (the planner's pick) visits every one each time. Over a
// 20,000-job burn-down that was 10,000 entries a reserve by the end, and
// the statement cost 2.5 times a plain reserve's; with plain scans, 1.35.
const slotsPlan = `SELECT set_config('enable_bitmapscan', 'off', true)`

// slotArgs are the rules' names to lock (distinct, sorted) and the
// arguments $8 to $12 of reserveSlotsSQL.
func slotArgs(p backends.ReserveSlotsParams) (names []string, args []any) {
	n := len(p.Rules)
	tasks, rnames, limits, backoffs := make([]string, n), make([]string, n), make([]int32, n), make([]int64, n)
	for i, r := range p.Rules {
		tasks[i], rnames[i], limits[i], backoffs[i] = r.Task, r.Name, int32(r.Limit), r.Backoff.Milliseconds()
	}
	names = slices.Compact(slices.Sorted(slices.Values(rnames)))
	return names, []any{tasks, rnames, limits, backoffs, p.KeyHeader}
}

// reserveSlotsSQL is the reserve statement with slot rules ($8 tasks, $9
// names, $10 limits, $11 backoffs in ms, $12 the key's header): of the
// due jobs Reserve would pick, one whose task has a rule is leased when
// the jobs running under its name and key, plus those before it in this
// pick, are fewer than its limit; otherwise it is postponed by its
// backoff. Rows come back with pos 0 and whether held back (withPos).
var reserveSlotsSQL = `WITH cand AS (
		SELECT ctid, task, coalesce(headers->>$12, '') AS k, priority, run_at, seq,
			(max_deliveries > 0 AND deliveries >= max_deliveries) AS poison, 0::bigint AS pos FROM S.jobs
		WHERE queue = $1 AND state IN {waiting} AND run_at <= $2
			AND NOT EXISTS (SELECT 1 FROM S.queues WHERE name = $1 AND paused)
		ORDER BY priority DESC, run_at, seq
		LIMIT $3
		FOR UPDATE SKIP LOCKED),` + slotsTail(8, "cand.priority DESC, cand.run_at, cand.seq")

// fairSlotsReserveSQL is fairReserveSQL ($8 and $9 the weights) with the
// rules of reserveSlotsSQL as $10 to $14, applied to the fair pick in its
// order (pos); the ring moves on for the jobs held back too.
var fairSlotsReserveSQL = `WITH ` + fairDue + `,
	cand AS (
		SELECT due.ctid, j.task, coalesce(j.headers->>$14, '') AS k, due.poison, due.pos
		FROM due JOIN S.jobs j ON j.ctid = due.ctid),` + slotsTail(10, "cand.pos")

// slotsTail ranks the jobs of the CTE cand (ctid, task, k, poison, pos)
// in order under the rules, parameters first to first+4, then postpones
// and leases them.
func slotsTail(first int, order string) string {
	arg := func(i int) string { return "$" + strconv.Itoa(first+i) }
	return strings.NewReplacer("{tasks}", arg(0), "{names}", arg(1), "{limits}", arg(2), "{backoffs}", arg(3),
		"{header}", arg(4), "{order}", order).Replace(`
	rules AS (
		SELECT * FROM unnest({tasks}::text[], {names}::text[], {limits}::int[], {backoffs}::bigint[]) AS r(task, name, lim, backoff)),
	running AS (
		SELECT r.name, coalesce(j.headers->>{header}, '') AS k, count(*) AS n
		FROM S.jobs j JOIN rules r ON r.task = j.task
		WHERE j.state = 'running' AND j.lease_expires_at > $2
		GROUP BY 1, 2),
	ranked AS (
		SELECT cand.ctid, cand.poison, cand.pos, r.backoff,
			r.name IS NULL OR cand.poison OR coalesce(running.n, 0) + row_number() OVER (
				PARTITION BY r.name, cand.k, r.name IS NULL OR cand.poison ORDER BY {order}) <= r.lim AS admit
		FROM cand LEFT JOIN rules r ON r.task = cand.task
		LEFT JOIN running ON running.name = r.name AND running.k = cand.k),
	held AS (
		UPDATE S.jobs j SET state = 'scheduled', run_at = $2 + ranked.backoff * interval '1 millisecond'
		FROM ranked WHERE j.ctid = ranked.ctid AND NOT ranked.admit
		RETURNING {jcols}, ranked.pos, true),
	leased AS (
		UPDATE S.jobs j SET ` + leaseDue + `
		FROM ranked AS due WHERE j.ctid = due.ctid AND due.admit
		RETURNING {jcols}, due.pos, false)
	SELECT * FROM leased UNION ALL SELECT * FROM held`)
}
