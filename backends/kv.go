package backends

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/conveyorhq/conveyor/job"
)

// KVStore is a small durable key-value store with versions for
// compare-and-set and optional expiry. It holds coordination state that
// must survive restarts and be shared by every process: the scheduler's
// entries, their fire times and its leader lease.
//
// Times are the caller's (the Now fields), so a caller with an injected
// clock sees expiry on that clock; a zero Now means the backend's clock.
// An expired key is absent. A key's version only grows, also across
// expiry, so a holder of an old version can never write.
//
// Keys are UTF-8 text: every method refuses another key or prefix with an
// error wrapping job.ErrInvalid (its params' Validate).
//
// Fallback when absent: scheduler.New refuses the backend with an error
// wrapping job.ErrUnsupported.
type KVStore interface {
	// GetKV returns a live key, or an error wrapping job.ErrNotFound.
	GetKV(ctx context.Context, p GetKVParams) (KV, error)
	// PutKV writes the key if its version is p.IfVersion (0: the key is
	// absent or expired) and returns the new version; otherwise the error
	// wraps job.ErrConflict.
	PutKV(ctx context.Context, p PutKVParams) (int64, error)
	// DeleteKV deletes the key if its version is p.IfVersion (0: whatever
	// its version). Deleting an absent key is not an error.
	DeleteKV(ctx context.Context, p DeleteKVParams) error
	// ListKV returns the live keys that start with p.Prefix, in key order.
	ListKV(ctx context.Context, p ListKVParams) ([]KV, error)
}

// KVBatcher reads and writes many keys of a KVStore in one round trip.
// The workflow engine advances every workflow of a round with one read
// and one write this way, where it would otherwise pay a read and a
// compare-and-set per workflow.
//
// Fallback when absent: the workflow engine reads and writes each
// workflow's record on its own, up to 16 at once.
type KVBatcher interface {
	// GetKVMany returns one KV per key of p.Keys, in that order; a key
	// that is absent or expired has Version 0 and no value.
	GetKVMany(ctx context.Context, p GetKVManyParams) ([]KV, error)
	// PutKVMany applies each put as PutKV would, each on its own: a put
	// whose IfVersion does not match is not applied and the others still
	// are. The result has one entry per put, in order: the key's new
	// version, or 0 where IfVersion did not match. A non-nil error means
	// the outcome of each put is unknown. The keys must be distinct
	// (PutKVManyParams.Validate).
	PutKVMany(ctx context.Context, p PutKVManyParams) ([]int64, error)
}

// GetKVManyParams is the input of KVBatcher.GetKVMany.
type GetKVManyParams struct {
	Keys []string
	Now  time.Time
}

// PutKVManyParams is the input of KVBatcher.PutKVMany. Each put's Now is
// its own.
type PutKVManyParams struct {
	Puts []PutKVParams
}

// Validate refuses a batch that names a key twice, whether the second put
// would see the first is not something backends agree on, and a key that
// is not UTF-8.
func (p PutKVManyParams) Validate() error {
	seen := make(map[string]bool, len(p.Puts))
	for _, put := range p.Puts {
		if err := put.Validate(); err != nil {
			return err
		}
		if seen[put.Key] {
			return fmt.Errorf("%w: key %s is put twice in one batch", job.ErrInvalid, put.Key)
		}
		seen[put.Key] = true
	}
	return nil
}

// validKey refuses a key (or prefix) that is not UTF-8, with an error
// wrapping job.ErrInvalid. Keys are text where they are stored and looked
// up: PostgreSQL's text column refuses such a key, and SQLite's batch read
// names its keys in a JSON array, where the bad bytes would become U+FFFD
// and read another key's value.
func validKey(key string) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key %q is not UTF-8", job.ErrInvalid, key)
	}
	return nil
}

// Validate checks the keys (validKey).
func (p GetKVManyParams) Validate() error {
	for _, k := range p.Keys {
		if err := validKey(k); err != nil {
			return err
		}
	}
	return nil
}

// KV is one key with its value.
type KV struct {
	Key       string
	Value     []byte
	Version   int64
	ExpiresAt time.Time // zero: never
}

// GetKVParams is the input of KVStore.GetKV.
type GetKVParams struct {
	Key string
	Now time.Time
}

// Validate checks the key (validKey).
func (p GetKVParams) Validate() error { return validKey(p.Key) }

// PutKVParams is the input of KVStore.PutKV.
type PutKVParams struct {
	Key       string
	Value     []byte
	IfVersion int64
	ExpiresAt time.Time // zero: never
	Now       time.Time
}

// Validate checks the key (validKey).
func (p PutKVParams) Validate() error { return validKey(p.Key) }

// DeleteKVParams is the input of KVStore.DeleteKV.
type DeleteKVParams struct {
	Key       string
	IfVersion int64
}

// Validate checks the key (validKey).
func (p DeleteKVParams) Validate() error { return validKey(p.Key) }

// ListKVParams is the input of KVStore.ListKV.
type ListKVParams struct {
	Prefix string
	Now    time.Time
}

// Validate checks the prefix (validKey).
func (p ListKVParams) Validate() error { return validKey(p.Prefix) }

// KVNow returns now, or the current time when it is zero.
func KVNow(now time.Time) time.Time {
	if now.IsZero() {
		return time.Now()
	}
	return now
}

// KVLive reports whether a key expiring at exp is live at now.
func KVLive(exp, now time.Time) bool { return exp.IsZero() || exp.After(now) }
