package membackend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var (
	_ backends.KVStore   = (*Backend)(nil)
	_ backends.KVBatcher = (*Backend)(nil)
)

// liveKV returns the key if it exists and has not expired at now (zero:
// the current time). The caller holds b.mu.
func (b *Backend) liveKV(key string, now time.Time) (backends.KV, bool) {
	kv, ok := b.kv[key]
	return kv, ok && backends.KVLive(kv.ExpiresAt, backends.KVNow(now))
}

// GetKV implements backends.KVStore.
func (b *Backend) GetKV(ctx context.Context, p backends.GetKVParams) (backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.KV{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	kv, ok := b.liveKV(p.Key, p.Now)
	if !ok {
		return backends.KV{}, fmt.Errorf("%w: key %s", job.ErrNotFound, p.Key)
	}
	kv.Value = slices.Clone(kv.Value)
	return kv, nil
}

// PutKV implements backends.KVStore.
func (b *Backend) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	next, have := b.putKV(p)
	if next == 0 {
		return 0, fmt.Errorf("%w: key %s is at version %d, not %d", job.ErrConflict, p.Key, have, p.IfVersion)
	}
	return next, nil
}

// putKV writes the key if its live version is p.IfVersion and returns the
// new version, or 0 and the version it has. The caller holds b.mu.
func (b *Backend) putKV(p backends.PutKVParams) (next, have int64) {
	if cur, live := b.liveKV(p.Key, p.Now); live {
		have = cur.Version
	}
	if have != p.IfVersion {
		return 0, have
	}
	next = b.kv[p.Key].Version + 1 // grows across expiry too
	b.kv[p.Key] = backends.KV{Key: p.Key, Value: slices.Clone(p.Value), Version: next, ExpiresAt: p.ExpiresAt}
	return next, have
}

// GetKVMany implements backends.KVBatcher.
func (b *Backend) GetKVMany(ctx context.Context, p backends.GetKVManyParams) ([]backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backends.KV, len(p.Keys))
	for i, k := range p.Keys {
		out[i] = backends.KV{Key: k}
		if kv, ok := b.liveKV(k, p.Now); ok {
			kv.Value = slices.Clone(kv.Value)
			out[i] = kv
		}
	}
	return out, nil
}

// PutKVMany implements backends.KVBatcher.
func (b *Backend) PutKVMany(ctx context.Context, p backends.PutKVManyParams) ([]int64, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int64, len(p.Puts))
	for i, put := range p.Puts {
		out[i], _ = b.putKV(put)
	}
	return out, nil
}

// DeleteKV implements backends.KVStore.
func (b *Backend) DeleteKV(ctx context.Context, p backends.DeleteKVParams) error {
	if err := b.gate.Valid(ctx, p); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.liveKV(p.Key, time.Time{})
	if p.IfVersion != 0 && (!ok || cur.Version != p.IfVersion) {
		return fmt.Errorf("%w: key %s is not at version %d", job.ErrConflict, p.Key, p.IfVersion)
	}
	// Keep the version so a re-created key continues from it.
	b.kv[p.Key] = backends.KV{Key: p.Key, Version: b.kv[p.Key].Version, ExpiresAt: deleted}
	return nil
}

// ListKV implements backends.KVStore.
func (b *Backend) ListKV(ctx context.Context, p backends.ListKVParams) ([]backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backends.KV
	for k := range b.kv {
		if kv, ok := b.liveKV(k, p.Now); ok && strings.HasPrefix(k, p.Prefix) {
			kv.Value = slices.Clone(kv.Value)
			out = append(out, kv)
		}
	}
	slices.SortFunc(out, func(x, y backends.KV) int { return strings.Compare(x.Key, y.Key) })
	return out, nil
}

// deleted marks a deleted key: expired since the start of time.
var deleted = time.Unix(0, 1)
