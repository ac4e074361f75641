package sqlitebackend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.ExhaustiveReserver = (*Backend)(nil)

// Reserve implements backends.Backend.
func (b *Backend) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	res, err := b.reserve(ctx, p, func(tx *sql.Tx, now time.Time, limit int) (*sql.Rows, error) {
		return b.prepared(ctx, tx, sqlCandidates).QueryContext(ctx, p.Queue, record.Micros(now), limit)
	}, nil)
	return res.Jobs, err
}

// ReservesExhaustively implements backends.ExhaustiveReserver: a reserve
// picks again, in its transaction, for the place of the jobs a full pick
// dead-lettered.
func (b *Backend) ReservesExhaustively() bool { return true }

// candidates names up to limit due jobs for a pick: rows of id,
// deliveries, max_deliveries, and with slot rules also task and key, in
// the order to return them.
type candidates func(tx *sql.Tx, now time.Time, limit int) (*sql.Rows, error)

// reserved is what the picks of one reserve gathered.
type reserved struct {
	jobs, held []*job.Record
	dead       []string // dead-lettered on the way: poison, corrupt rows
}

// reserve leases the due jobs that candidates names, once expired leases
// are reaped; with sp, a job its rule does not admit is held back instead
// (slots.go). It picks until it has p.Limit jobs leased or held back, or
// a pick came back short of what it asked for: nothing else was due.
func (b *Backend) reserve(ctx context.Context, p backends.ReserveParams, next candidates,
	sp *backends.ReserveSlotsParams) (backends.ReserveSlotsResult, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	// Idle workers ask often; answering "nothing due" from a read
	// connection keeps them off the single write lock. The write
	// transaction below looks again, so a job that becomes due in between
	// is merely picked up on the next call.
	if due, err := b.anyDue(ctx, p.Queue); err != nil || !due {
		return backends.ReserveSlotsResult{}, err
	}
	var acc reserved
	err := b.write(ctx, func(tx *sql.Tx) error {
		acc = reserved{}
		now := b.cfg.Clock.Now()
		var paused bool
		err := b.prepared(ctx, tx, sqlPaused).QueryRowContext(ctx, p.Queue).Scan(&paused)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if paused {
			return nil
		}
		// Expired leases first: their jobs become due again with their old
		// run-at, so they are redelivered ahead of newer work.
		if _, err := b.prepared(ctx, tx, sqlReapLeases).ExecContext(ctx, p.Queue, record.Micros(now)); err != nil {
			return err
		}
		// record.Fill's loop, but inside the transaction: an error rolls
		// every pick back, where Fill would keep the picks before it.
		for {
			want := p.Limit - len(acc.jobs) - len(acc.held)
			picked, err := b.pick(ctx, tx, p, next, sp, now, want, &acc)
			if err != nil {
				return err
			}
			// Again after a full pick only: its dead letters took places.
			if picked < want || len(acc.jobs)+len(acc.held) >= p.Limit {
				return nil
			}
		}
	})
	if err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	for _, id := range acc.dead {
		b.hub.Publish(backends.Event{Kind: backends.JobFinished, Queue: p.Queue, JobID: id})
	}
	return backends.ReserveSlotsResult{Jobs: acc.jobs, HeldBack: acc.held}, nil
}

// pick leases (or holds back, or dead-letters) the up to limit jobs that
// next names, into acc, and returns how many it named.
func (b *Backend) pick(ctx context.Context, tx *sql.Tx, p backends.ReserveParams, next candidates,
	sp *backends.ReserveSlotsParams, now time.Time, limit int, acc *reserved) (int, error) {
	rows, err := next(tx, now, limit)
	if err != nil {
		return 0, err
	}
	var ids []string
	var ruled []slotCandidate    // with sp: the jobs a rule may hold back
	aside := map[string]string{} // job ID -> why it goes to dead letter; "" when its row does not decode
	picked := 0
	for rows.Next() {
		picked++
		var c slotCandidate
		var deliveries, maxDeliveries intColumn
		dest := []any{&c.id, &deliveries, &maxDeliveries}
		if sp != nil {
			dest = append(dest, &c.task, &c.key)
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return 0, err
		}
		switch {
		case deliveries.bad != nil || maxDeliveries.bad != nil:
			aside[c.id] = ""
		case maxDeliveries.n > 0 && deliveries.n >= maxDeliveries.n:
			aside[c.id] = backends.PoisonReason(int(deliveries.n))
		default:
			ids = append(ids, c.id)
			ruled = append(ruled, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if sp != nil {
		var held []*job.Record
		if ids, held, err = holdBack(ctx, tx, *sp, ruled, now); err != nil {
			return 0, err
		}
		acc.held = append(acc.held, held...)
	}
	for id, reason := range aside {
		_, ok, err := setAside(ctx, tx, id, now, reason)
		if err != nil {
			return 0, err
		}
		if ok {
			acc.dead = append(acc.dead, id)
		}
	}
	if len(ids) == 0 {
		return picked, nil
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return 0, err
	}
	rows, err = b.prepared(ctx, tx, sqlLease).QueryContext(ctx, record.Micros(now), record.Token(12),
		record.Micros(now.Add(p.Lease)), p.Worker, string(idList))
	if err != nil {
		return 0, err
	}
	byID := map[string]*job.Record{}
	var corrupt []string
	for rows.Next() {
		r, err := scanRecord(rows)
		switch {
		case errors.Is(err, job.ErrMalformedPayload):
			corrupt = append(corrupt, r.ID)
		case err != nil:
			rows.Close()
			return 0, err
		default:
			byID[r.ID] = r
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// A row no one can read goes to dead letter with the reason rather
	// than failing every reserve of the queue from now on.
	for _, id := range corrupt {
		_, ok, err := setAside(ctx, tx, id, now, "")
		if err != nil {
			return 0, err
		}
		if ok {
			acc.dead = append(acc.dead, id)
		}
	}
	for _, id := range ids { // RETURNING has no defined order
		if r := byID[id]; r != nil {
			acc.jobs = append(acc.jobs, r)
		}
	}
	return picked, nil
}
