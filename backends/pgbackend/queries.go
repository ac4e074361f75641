package pgbackend

import "strings"

// queries are the statements, with the schema filled in once at New.
type queries struct {
	schema                                                                              string
	insert, insertOne, recoverQueue, reserve, extend, complete, completeTx, retry, dead string
	lockQueues, lockKeys, holders, existing, depth, selectJob                           string
	cancelRow, cancelRequest, cancelJob, getJob, listJobs, listAllJobs, stats           string
	replay, replayQueue, deleteJobs, purge, pause, resume, recoverAll                   string
	pruneDone, pruneDead, foldCounts, deadJobs                                          string
	fairLock, fairReserve, ringTryLock, pruneRing                                       string // fair.go
	reserveSlots, fairSlotsReserve                                                      string // slots.go
	takeTokens                                                                          string // limits.go
}

// recordCols are the columns scanRecord reads, in order.
const recordCols = `seq, id, queue, task, payload, headers, priority, state, run_at, created_at, started_at,
	finished_at, deliveries, max_deliveries, timeout_ms, retry_policy, unique_key, unique_until, errors,
	result, lease_token, lease_expires_at, cancel_requested`

const waiting = `('pending', 'scheduled', 'retrying')`

// leaseDue is the SET list of the reserve statements (reserve and
// fairReserve): each job of the CTE due ($2 now, $4 the token prefix, $5
// the lease in ms, $6 the poison format, $7 the worker) is leased, or
// dead-lettered when it has used its deliveries (due.poison).
const leaseDue = `
				state = CASE WHEN due.poison THEN 'dead' ELSE 'running' END,
				deliveries = j.deliveries + CASE WHEN due.poison THEN 0 ELSE 1 END,
				started_at = CASE WHEN due.poison THEN j.started_at ELSE $2 END,
				finished_at = CASE WHEN due.poison THEN $2 END,
				errors = CASE WHEN due.poison THEN j.errors || jsonb_build_array(jsonb_build_object(
					'attempt', jsonb_array_length(j.errors) + 1, 'at', $2::timestamptz, 'error', format($6, j.deliveries)))
					ELSE j.errors END,
				lease_token = CASE WHEN due.poison THEN NULL ELSE $4 || j.seq END,
				lease_expires_at = CASE WHEN due.poison THEN NULL ELSE $2 + $5 * interval '1 millisecond' END,
				cancel_requested = false,
				worker = $7
`

func newQueries(schema string) queries {
	t := func(sql string) string {
		return strings.NewReplacer("S.", schema+".", "{cols}", recordCols, "{jcols}", "j."+strings.ReplaceAll(recordCols, ", ", ", j."),
			"{waiting}", waiting).Replace(sql)
	}
	return queries{
		schema:           schema,
		fairLock:         t(fairLockSQL),
		fairReserve:      t(fairReserveSQL),
		ringTryLock:      t(ringTryLockSQL),
		pruneRing:        t(pruneRingSQL),
		reserveSlots:     t(reserveSlotsSQL),
		fairSlotsReserve: t(fairSlotsReserveSQL),
		takeTokens:       t(takeTokensSQL),
		// No row when the role does not own the table (VACUUM would warn
		// and do nothing).
		deadJobs: t(`SELECT s.n_dead_tup FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid
			WHERE s.relid = 'S.jobs'::regclass AND pg_has_role(c.relowner, 'USAGE')`),
		// The CTE gives each new (queue, group) its row in the fair ring
		// (fair.go).
		insert: t(`WITH ` + ringShared + ` WHERE '' <> ANY($15::text[])),
			ring AS (INSERT INTO S.fair_groups (queue, grp)
				SELECT DISTINCT queue, grp FROM unnest($2::text[], $15::text[]) AS g(queue, grp)
				WHERE (SELECT count(*) FROM lk) >= 0 ORDER BY 1, 2
				ON CONFLICT DO NOTHING)
			INSERT INTO S.jobs (id, queue, task, payload, headers, priority, state, run_at, created_at,
				max_deliveries, timeout_ms, retry_policy, unique_key, unique_until, grp)
			SELECT id, queue, task, payload, headers, priority,
				CASE WHEN run_at > $14 THEN 'scheduled' ELSE 'pending' END, run_at, $14,
				max_deliveries, timeout_ms, retry_policy, unique_key, unique_until, grp
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[], $6::int[], $7::timestamptz[],
				$8::int[], $9::bigint[], $10::text[], $11::text[], $12::timestamptz[], $13::int[], $15::text[])
				AS i(id, queue, task, payload, headers, priority, run_at, max_deliveries, timeout_ms, retry_policy,
					unique_key, unique_until, ord, grp)
			ORDER BY ord
			ON CONFLICT (id) DO NOTHING
			RETURNING id, state`),
		// insert's one job of no group, without its arrays and the ring's
		// CTE: the single enqueue a web handler makes.
		insertOne: t(`INSERT INTO S.jobs (id, queue, task, payload, headers, priority, state, run_at, created_at,
				max_deliveries, timeout_ms, retry_policy, unique_key, unique_until)
			VALUES ($1, $2, $3, $4, $5::jsonb, $6, CASE WHEN $7::timestamptz > $13 THEN 'scheduled' ELSE 'pending' END,
				$7, $13, $8, $9, $10, $11, $12)
			ON CONFLICT (id) DO NOTHING
			RETURNING id, state`),
		// An upsert that always locks the queue's row: a new row is locked by
		// its insert, an existing one by DO UPDATE. (A separate SELECT FOR
		// UPDATE in the same statement would not see a row another
		// transaction committed after the statement began, and take no lock.)
		lockQueues: t(`INSERT INTO S.queues AS q (name) SELECT unnest($1::text[]) ORDER BY 1
			ON CONFLICT (name) DO UPDATE SET paused = q.paused
			RETURNING name`),
		lockKeys: t(`SELECT pg_advisory_xact_lock(hashtextextended($1 || k, 0)) FROM unnest($2::text[]) k ORDER BY k`),
		holders: t(`SELECT DISTINCT ON (unique_key) unique_key, id, state, unique_until FROM S.jobs
			WHERE unique_key = ANY($1) ORDER BY unique_key, seq DESC`),
		existing: t(`SELECT id, state FROM S.jobs WHERE id = ANY($1)`),
		depth: t(`SELECT queue, coalesce(sum(n), 0)::bigint FROM S.job_totals
			WHERE queue = ANY($1) AND state IN ('pending', 'scheduled', 'running', 'retrying') GROUP BY queue`),
		recoverQueue: t(`UPDATE S.jobs SET state = 'pending', lease_token = NULL, lease_expires_at = NULL
			WHERE queue = $1 AND state = 'running' AND lease_expires_at <= $2`),
		// The batch statements lock the rows their subquery picks: a row
		// changed in between is checked again in its new version, and one
		// another transaction holds is left for the next batch.
		recoverAll: t(`UPDATE S.jobs SET state = 'pending', lease_token = NULL, lease_expires_at = NULL
			WHERE id IN (SELECT id FROM S.jobs WHERE state = 'running' AND lease_expires_at <= $1
				LIMIT 1000 FOR UPDATE SKIP LOCKED)`),
		// One statement: pick due jobs in reserve order, skipping rows other
		// reservers hold, and lease them; a job already delivered
		// max_deliveries times goes to dead instead, with the reason.
		reserve: t(`WITH due AS (
				SELECT ctid, (max_deliveries > 0 AND deliveries >= max_deliveries) AS poison FROM S.jobs
				WHERE queue = $1 AND state IN {waiting} AND run_at <= $2
					AND NOT EXISTS (SELECT 1 FROM S.queues WHERE name = $1 AND paused)
				ORDER BY priority DESC, run_at, seq
				LIMIT $3
				FOR UPDATE SKIP LOCKED)
			UPDATE S.jobs j SET ` + leaseDue + `
			FROM due WHERE j.ctid = due.ctid
			RETURNING {jcols}`),
		extend: t(`UPDATE S.jobs j SET lease_expires_at = $2 + $3 * interval '1 millisecond'
			FROM unnest($1::text[], $4::text[]) AS l(id, token)
			WHERE j.id = l.id AND j.lease_token = l.token AND j.state = 'running' AND j.lease_expires_at > $2
			RETURNING j.id, l.token, j.lease_expires_at, j.cancel_requested`),
		// A job completed by CompleteTx in the handler's own transaction
		// carries "<token>#tx": the worker's completion afterwards matches
		// it once and succeeds without changing the outcome. (The state
		// test is not an OR of the two cases, which would let the planner
		// reach rows through the state indexes instead of the key.)
		complete: t(`UPDATE S.jobs j SET state = 'done',
				finished_at = CASE WHEN j.state = 'running' THEN $2 ELSE j.finished_at END,
				result = CASE WHEN j.state = 'running' THEN c.result ELSE j.result END,
				lease_token = NULL, lease_expires_at = NULL
			FROM unnest($1::text[], $3::text[], $4::bytea[]) AS c(id, token, result)
			WHERE j.id = c.id AND j.lease_token IN (c.token, c.token || '#tx')
				AND j.state = CASE WHEN j.lease_token = c.token THEN 'running' ELSE 'done' END
			RETURNING j.id`),
		completeTx: t(`UPDATE S.jobs j SET state = 'done', finished_at = $2, result = c.result,
				lease_token = c.token || '#tx', lease_expires_at = NULL
			FROM unnest($1::text[], $3::text[], $4::bytea[]) AS c(id, token, result)
			WHERE j.id = c.id AND j.state = 'running' AND j.lease_token = c.token
			RETURNING j.id`),
		retry: t(`UPDATE S.jobs SET
				state = CASE WHEN $4::timestamptz <= $2::timestamptz THEN 'pending'
					WHEN $5::jsonb IS NULL THEN 'scheduled' ELSE 'retrying' END,
				run_at = $4::timestamptz,
				deliveries = deliveries - CASE WHEN $5::jsonb IS NULL THEN 1 ELSE 0 END,
				errors = CASE WHEN $5::jsonb IS NULL THEN errors ELSE errors || $5::jsonb END,
				lease_token = NULL, lease_expires_at = NULL
			WHERE id = $1 AND lease_token = $3 AND state = 'running'
			RETURNING id`),
		dead: t(`UPDATE S.jobs SET state = 'dead', finished_at = $2, errors = errors || $4::jsonb,
				lease_token = NULL, lease_expires_at = NULL
			WHERE id = $1 AND lease_token = $3 AND state = 'running'
			RETURNING id`),
		cancelRow:     t(`SELECT state, coalesce(lease_token, '') FROM S.jobs WHERE id = $1 FOR UPDATE`),
		cancelRequest: t(`UPDATE S.jobs SET cancel_requested = true WHERE id = $1`),
		cancelJob: t(`UPDATE S.jobs SET state = 'cancelled', finished_at = $2, lease_token = NULL, lease_expires_at = NULL
			WHERE id = $1`),
		getJob:   t(`SELECT {cols} FROM S.jobs WHERE id = $1`),
		listJobs: t(`SELECT {cols} FROM S.jobs WHERE queue = $1 AND state = $2 AND seq > $3 ORDER BY seq LIMIT $4`),
		// Every queue's: a walk of jobs_by_state per queue that has jobs in
		// the state (the counts say which), merged. One query over the
		// whole table can use no index on (queue, state, seq) without a
		// queue, and scanned every job for a state that has few.
		listAllJobs: t(`SELECT j.* FROM (SELECT queue AS name FROM S.job_totals WHERE state = $1 AND n > 0) q
			CROSS JOIN LATERAL (SELECT {cols} FROM S.jobs WHERE queue = q.name AND state = $1 AND seq > $2 ORDER BY seq LIMIT $3) j
			ORDER BY j.seq LIMIT $3`),
		stats: t(`SELECT coalesce(c.queue, q.name), coalesce(c.state, ''), coalesce(c.n, 0), coalesce(q.paused, false)
			FROM (SELECT queue, state, n FROM S.job_totals WHERE $1 = '' OR queue = $1) c
			FULL JOIN (SELECT name, paused FROM S.queues WHERE $1 = '' OR name = $1) q ON q.name = c.queue`),
		// A replayed job's group may have left the fair ring while the job
		// was dead (fair.go): the replay puts it back, as an enqueue does.
		replay: t(`WITH ` + ringShared + `),
			replayed AS (UPDATE S.jobs j SET state = 'pending', deliveries = 0, run_at = $2, finished_at = NULL,
				payload = coalesce(r.payload, j.payload)
			FROM unnest($1::text[], $3::bytea[]) AS r(id, payload)
			WHERE j.id = r.id AND j.state IN ('dead', 'cancelled')
			RETURNING j.queue, j.grp),
			` + ringReplayed),
		replayQueue: t(`WITH ` + ringShared + `),
			replayed AS (UPDATE S.jobs SET state = 'pending', deliveries = 0, run_at = $2, finished_at = NULL
			WHERE id IN (SELECT id FROM S.jobs WHERE queue = $1 AND state = 'dead' LIMIT 1000 FOR UPDATE SKIP LOCKED)
			RETURNING queue, grp),
			` + ringReplayed),
		deleteJobs: t(`DELETE FROM S.jobs WHERE id = ANY($1) AND state <> 'running'`),
		purge: t(`DELETE FROM S.jobs WHERE id IN (SELECT id FROM S.jobs WHERE queue = $1 AND state = ANY($2)
			AND state <> 'running' LIMIT 1000 FOR UPDATE SKIP LOCKED)`),
		pause:  t(`INSERT INTO S.queues (name, paused) VALUES ($1, true) ON CONFLICT (name) DO UPDATE SET paused = true`),
		resume: t(`INSERT INTO S.queues (name, paused) VALUES ($1, false) ON CONFLICT (name) DO UPDATE SET paused = false`),
		pruneDone: t(`DELETE FROM S.jobs WHERE id IN (SELECT id FROM S.jobs WHERE state IN ('done', 'cancelled')
			AND finished_at < $1 AND (unique_until IS NULL OR unique_until < $2) LIMIT 1000 FOR UPDATE SKIP LOCKED)`),
		pruneDead: t(`DELETE FROM S.jobs WHERE id IN (SELECT id FROM S.jobs WHERE state = 'dead'
			AND finished_at < $1 AND (unique_until IS NULL OR unique_until < $2) LIMIT 1000 FOR UPDATE SKIP LOCKED)`),
		// Moves the count deltas the triggers logged into job_counts. Two
		// folds at once cannot both take a row: the second's DELETE skips
		// rows the first deleted.
		foldCounts: t(`WITH d AS (DELETE FROM S.job_count_log RETURNING queue, state, n)
			INSERT INTO S.job_counts AS c (queue, state, n)
			SELECT queue, state, sum(n) FROM d GROUP BY queue, state ORDER BY queue, state
			ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n`),
	}
}
