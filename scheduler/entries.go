package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Entries reads and steers the entries stored in a backend, without
// running a scheduler (which needs the tasks and leads the firing): what
// the dashboard and the CLI use to list, pause and remove them.
type Entries struct {
	kv    backends.KVStore
	clock Clock
}

// NewEntries returns the entries stored in b, which must be a
// backends.KVStore; otherwise the error wraps job.ErrUnsupported.
func NewEntries(b backends.Backend) (*Entries, error) {
	kv, ok := b.(backends.KVStore)
	if !ok {
		return nil, fmt.Errorf("%w: scheduler entries need a backends.KVStore; %T is not one", job.ErrUnsupported, b)
	}
	return &Entries{kv: kv, clock: backends.SystemClock{}}, nil
}

// update reads an entry's state, applies fn and writes it back with a
// compare-and-set, retrying on conflict. With create, an absent entry
// starts empty; without, it is job.ErrNotFound.
func (e *Entries) update(ctx context.Context, name string, create bool, fn func(*EntryState) bool) error {
	return e.updateFrom(ctx, name, nil, create, fn)
}

// updateFrom is update starting from kv, the entry as just listed, when
// given; it reads the entry afresh only when there is none or the write
// finds a newer version.
func (e *Entries) updateFrom(ctx context.Context, name string, kv *backends.KV, create bool, fn func(*EntryState) bool) error {
	for ; ; kv = nil {
		if kv == nil {
			got, err := e.kv.GetKV(ctx, backends.GetKVParams{Key: entryPrefix + name, Now: e.clock.Now()})
			switch {
			case errors.Is(err, job.ErrNotFound) && create:
			case err != nil:
				return fmt.Errorf("scheduler: entry %s: %w", name, err)
			}
			kv = &got
		}
		var st EntryState
		if kv.Version != 0 {
			if err := json.Unmarshal(kv.Value, &st); err != nil {
				return fmt.Errorf("%w: scheduler entry %s: %w", job.ErrMalformedPayload, name, err)
			}
		}
		if !fn(&st) {
			return nil
		}
		val, _ := json.Marshal(st)
		_, err := e.kv.PutKV(ctx, backends.PutKVParams{Key: entryPrefix + name, Value: val, IfVersion: kv.Version, Now: e.clock.Now()})
		if !errors.Is(err, job.ErrConflict) {
			if err != nil {
				return fmt.Errorf("scheduler: entry %s: %w", name, err)
			}
			return nil
		}
	}
}

// Remove deletes an entry.
func (e *Entries) Remove(ctx context.Context, name string) error {
	return e.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: entryPrefix + name})
}

// Pause stops (or, with paused false, resumes) an entry's ticks. Ticks
// that pass while paused are skipped.
func (e *Entries) Pause(ctx context.Context, name string, paused bool) error {
	return e.update(ctx, name, false, func(st *EntryState) bool {
		st.Paused = paused
		return true
	})
}

// List returns every stored entry with its state.
func (e *Entries) List(ctx context.Context) ([]EntryState, error) {
	kvs, err := e.kv.ListKV(ctx, backends.ListKVParams{Prefix: entryPrefix, Now: e.clock.Now()})
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	out := make([]EntryState, 0, len(kvs))
	for _, kv := range kvs {
		var st EntryState
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("%w: scheduler entry %s: %w", job.ErrMalformedPayload, kv.Key, err)
		}
		out = append(out, st)
	}
	return out, nil
}
