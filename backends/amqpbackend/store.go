package amqpbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// store keeps job state in a KVStore: one key per job (its doc), one per
// held unique key (the holder's ID), one depth counter per bounded queue
// and a tombstone per job deleted on purpose. Every change is a
// compare-and-set on the job's key, so two processes never both move a
// job.
type store struct {
	kv                 backends.KVStore
	prefix             string
	keepDone, keepDead time.Duration
	cnt                *counts // per-queue per-state counts (counts.go)
}

func (s store) jobKey(id string) string        { return s.prefix + "/job/" + id }
func (s store) jobPrefix() string              { return s.prefix + "/job/" }
func (s store) uniqueKey(q, key string) string { return s.prefix + "/unique/" + q + "/" + key }
func (s store) depthKey(q string) string       { return s.prefix + "/depth/" + q }
func (s store) goneKey(id string) string       { return s.prefix + "/gone/" + id }

// get returns the job and its version, or an error wrapping job.ErrNotFound.
func (s store) get(ctx context.Context, id string) (*doc, int64, error) {
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: s.jobKey(id)})
	if err != nil {
		return nil, 0, fmt.Errorf("amqpbackend: job %s: %w", id, err)
	}
	var d doc
	if err := json.Unmarshal(kv.Value, &d); err != nil {
		return nil, 0, fmt.Errorf("amqpbackend: stored job %s: %w: %w", id, job.ErrMalformedPayload, err)
	}
	d.version = kv.Version
	return &d, kv.Version, nil
}

// put writes d if its key is at version v (0: absent), and counts a new
// job (update counts a change).
func (s store) put(ctx context.Context, d *doc, v int64) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("amqpbackend: encode job %s: %w", d.ID, err)
	}
	_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: s.jobKey(d.ID), Value: b, IfVersion: v, ExpiresAt: s.expiry(d)})
	if err == nil && v == 0 {
		s.moved(nil, d)
	}
	return err
}

// expiry is when a finished job is forgotten (zero: never): its retention
// after it finished, or after its run-at if that is later. A job
// cancelled while it waited still has a message on its way, which must
// find the record and be dropped, not find nothing and be restored.
func (s store) expiry(d *doc) time.Time {
	keep := s.keepDone
	if d.State == job.Dead {
		keep = s.keepDead
	}
	if !d.State.Finished() || keep < 0 {
		return time.Time{}
	}
	from := d.FinishedAt
	if d.RunAt.After(from) {
		from = d.RunAt
	}
	return from.Add(keep)
}

// update applies fn to the stored job and writes it back, again from a
// fresh read when another writer came first. An error from fn is returned
// as is and writes nothing.
func (s store) update(ctx context.Context, id string, fn func(*doc) error) (*doc, error) {
	for {
		d, v, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		before := *d
		if err := fn(d); err != nil {
			return d, err
		}
		err = s.put(ctx, d, v)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("amqpbackend: store job %s: %w", id, err)
		}
		s.moved(&before, d)
		return d, nil
	}
}

// claimUnique takes d's unique key for d, or returns the ID of the job
// that holds it. A key held until its job finishes has no expiry and is
// released by release; one with a window expires at UniqueUntil. A key
// whose holder is neither stored nor among batch (the jobs being enqueued
// with d), and was claimed more than wait ago, was left by a deleted job
// or a dead enqueue and is taken over; a younger one may be an enqueue
// between its publish and its record.
func (s store) claimUnique(ctx context.Context, d *doc, batch []*doc, wait time.Duration) (string, error) {
	key := s.uniqueKey(d.Queue, d.UniqueKey)
	for {
		_, err := s.kv.PutKV(ctx, backends.PutKVParams{Key: key, Value: holderValue(d.ID, time.Now()), ExpiresAt: d.UniqueUntil})
		if err == nil {
			return "", nil
		}
		if !errors.Is(err, job.ErrConflict) {
			return "", fmt.Errorf("amqpbackend: unique key: %w", err)
		}
		kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: key})
		if errors.Is(err, job.ErrNotFound) {
			continue // released or expired meanwhile
		}
		if err != nil {
			return "", fmt.Errorf("amqpbackend: unique key: %w", err)
		}
		holder, at := parseHolder(kv.Value)
		inBatch := slices.ContainsFunc(batch, func(o *doc) bool { return o.ID == holder })
		if _, _, err := s.get(ctx, holder); !inBatch && errors.Is(err, job.ErrNotFound) && time.Since(at) > wait {
			// The holder was deleted without releasing the key: take it over.
			if err := s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: key, IfVersion: kv.Version}); err != nil && !errors.Is(err, job.ErrConflict) {
				return "", fmt.Errorf("amqpbackend: unique key: %w", err)
			}
			continue
		}
		return holder, nil
	}
}

// holderValue is a unique key's value: the holder's ID and, after a NUL,
// when it claimed the key (Unix nanoseconds).
func holderValue(id string, at time.Time) []byte {
	return []byte(id + "\x00" + strconv.FormatInt(at.UnixNano(), 10))
}

// parseHolder reads holderValue's value; one without a time (written by
// an earlier version) reads as claimed long ago.
func parseHolder(v []byte) (id string, at time.Time) {
	id, ns, ok := strings.Cut(string(v), "\x00")
	if n, err := strconv.ParseInt(ns, 10, 64); ok && err == nil {
		at = time.Unix(0, n)
	}
	return id, at
}

// release gives back what a job held while unfinished: its unique key
// (unless it has a window, which outlives the job) and its place in the
// depth counter. It runs once per job, after the change that finished it.
func (s store) release(ctx context.Context, d *doc) error {
	if d.UniqueKey != "" && d.UniqueUntil.IsZero() {
		if err := s.unclaim(ctx, d); err != nil {
			return err
		}
	}
	if d.Bounded {
		return s.addDepth(ctx, d.Queue, -1, 0)
	}
	return nil
}

// unclaim deletes d's unique key if d holds it.
func (s store) unclaim(ctx context.Context, d *doc) error {
	key := s.uniqueKey(d.Queue, d.UniqueKey)
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: key})
	switch {
	case errors.Is(err, job.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("amqpbackend: release unique key: %w", err)
	}
	if holder, _ := parseHolder(kv.Value); holder != d.ID {
		return nil
	}
	err = s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: key, IfVersion: kv.Version})
	if err != nil && !errors.Is(err, job.ErrConflict) {
		return fmt.Errorf("amqpbackend: release unique key: %w", err)
	}
	return nil
}

// delete removes job d's key if it is at version v (0: whatever its
// version), leaving no tombstone: for a job whose enqueue failed, of which
// no message may be left.
func (s store) delete(ctx context.Context, d *doc, v int64) error {
	err := s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: s.jobKey(d.ID), IfVersion: v})
	if err == nil {
		s.moved(d, nil)
	}
	return err
}

// remove deletes the job d, as read at d.version, on purpose: it leaves a
// tombstone first, so that a message of it still on its way is dropped
// rather than taken for a job whose record the store lost. The error
// wraps job.ErrConflict if the job changed since it was read.
func (s store) remove(ctx context.Context, d *doc) error {
	gone := s.goneKey(d.ID)
	_, err := s.kv.PutKV(ctx, backends.PutKVParams{Key: gone, Value: []byte(d.State), ExpiresAt: s.tombExpiry(d)})
	if errors.Is(err, job.ErrConflict) { // an older tombstone (the ID was used again): refresh it
		if kv, gerr := s.kv.GetKV(ctx, backends.GetKVParams{Key: gone}); gerr == nil {
			_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: gone, Value: []byte(d.State), IfVersion: kv.Version, ExpiresAt: s.tombExpiry(d)})
		}
	}
	if err != nil {
		return fmt.Errorf("amqpbackend: tombstone of job %s: %w", d.ID, err)
	}
	if err := s.delete(ctx, d, d.version); err != nil {
		if errors.Is(err, job.ErrConflict) { // not deleted: no tombstone either
			_ = s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: gone})
		}
		return err
	}
	return nil
}

// tombExpiry is how long a tombstone outlives the message it stands for:
// the longer retention, counted from the job's run-at if that is later
// than now (the message waits in a delay level until then). Zero (never)
// if either retention is forever.
func (s store) tombExpiry(d *doc) time.Time {
	if s.keepDone < 0 || s.keepDead < 0 {
		return time.Time{}
	}
	from := time.Now()
	if d.RunAt.After(from) {
		from = d.RunAt
	}
	return from.Add(max(s.keepDone, s.keepDead))
}

// tombstoned reports whether job id was deleted on purpose (see remove).
func (s store) tombstoned(ctx context.Context, id string) (bool, error) {
	_, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: s.goneKey(id)})
	if errors.Is(err, job.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("amqpbackend: tombstone of job %s: %w", id, err)
	}
	return true, nil
}

// readDepth returns queue q's depth counter and its version (0: absent).
func (s store) readDepth(ctx context.Context, q string) (int, int64, error) {
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: s.depthKey(q)})
	if errors.Is(err, job.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("amqpbackend: depth counter of %s: %w", q, err)
	}
	n, err := strconv.Atoi(string(kv.Value))
	if err != nil {
		return 0, kv.Version, nil // unreadable: the recount overwrites it
	}
	return n, kv.Version, nil
}

// setDepth writes queue q's depth counter if it is still at version v;
// otherwise the error wraps job.ErrConflict.
func (s store) setDepth(ctx context.Context, q string, n int, v int64) error {
	_, err := s.kv.PutKV(ctx, backends.PutKVParams{Key: s.depthKey(q), Value: []byte(strconv.Itoa(n)), IfVersion: v})
	return err
}

// addDepth adds delta to queue q's count of unfinished bounded jobs,
// failing with job.ErrQueueFull, and changing nothing, when an increase
// would pass bound.
func (s store) addDepth(ctx context.Context, q string, delta, bound int) error {
	key := s.depthKey(q)
	for {
		var n int
		var v int64
		kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: key})
		switch {
		case err == nil:
			if n, err = strconv.Atoi(string(kv.Value)); err != nil {
				return fmt.Errorf("amqpbackend: depth counter of %s: %w", q, err)
			}
			v = kv.Version
		case !errors.Is(err, job.ErrNotFound):
			return fmt.Errorf("amqpbackend: depth counter of %s: %w", q, err)
		}
		if delta > 0 && bound > 0 && n+delta > bound {
			return backends.QueueFullError(q, n, delta, bound)
		}
		_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: key, Value: []byte(strconv.Itoa(max(n+delta, 0))), IfVersion: v})
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("amqpbackend: depth counter of %s: %w", q, err)
		}
		return nil
	}
}
