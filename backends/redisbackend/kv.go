package redisbackend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var (
	_ backends.KVStore   = (*Backend)(nil)
	_ backends.KVBatcher = (*Backend)(nil)
	// kvScript stands alone: it touches no queue's keys.
	kvScript = redis.NewScript(mustRead("kv"))
)

func (b *Backend) kvBase() string { return b.cfg.Prefix + ":{kv}" }

func (b *Backend) kv(ctx context.Context, args ...any) *redis.Cmd {
	return kvScript.Run(ctx, b.rdb, []string{b.kvBase()}, args...)
}

// kvRead runs the script's read-only actions (get, list) as EVALSHA_RO,
// which Config.WaitReplicas does not wait for: there is nothing to
// replicate.
func (b *Backend) kvRead(ctx context.Context, args ...any) *redis.Cmd {
	return kvScript.RunRO(ctx, b.rdb, []string{b.kvBase()}, args...)
}

// GetKV implements backends.KVStore.
func (b *Backend) GetKV(ctx context.Context, p backends.GetKVParams) (backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.KV{}, err
	}
	v, err := b.kvRead(ctx, "get", p.Key, record.Millis(backends.KVNow(p.Now))).Slice()
	if err != nil {
		return backends.KV{}, fmt.Errorf("redisbackend: get key %s: %w", p.Key, err)
	}
	if len(v) < 3 {
		return backends.KV{}, fmt.Errorf("%w: key %s", job.ErrNotFound, p.Key)
	}
	return kvFrom(p.Key, v[0], v[1], v[2]), nil
}

func kvFrom(key string, version, exp, val any) backends.KV {
	ver, _ := strconv.ParseInt(str(version), 10, 64)
	x, _ := strconv.ParseInt(str(exp), 10, 64)
	return backends.KV{Key: key, Version: ver, ExpiresAt: record.FromMillis(x), Value: []byte(str(val))}
}

// PutKV implements backends.KVStore.
func (b *Backend) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return 0, err
	}
	v, err := b.kv(ctx, "put", p.Key, p.Value, p.IfVersion, record.Millis(p.ExpiresAt), record.Millis(backends.KVNow(p.Now))).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisbackend: put key %s: %w", p.Key, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("%w: key %s is not at version %d", job.ErrConflict, p.Key, p.IfVersion)
	}
	return v, nil
}

// GetKVMany implements backends.KVBatcher in one run of the script.
func (b *Backend) GetKVMany(ctx context.Context, p backends.GetKVManyParams) ([]backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	if len(p.Keys) == 0 {
		return []backends.KV{}, nil
	}
	args := make([]any, 0, 2+len(p.Keys))
	args = append(args, "getmany", record.Millis(backends.KVNow(p.Now)))
	for _, k := range p.Keys {
		args = append(args, k)
	}
	v, err := b.kvRead(ctx, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisbackend: get %d keys: %w", len(p.Keys), err)
	}
	if len(v) != 3*len(p.Keys) {
		return nil, fmt.Errorf("redisbackend: get %d keys: the script returned %d values", len(p.Keys), len(v))
	}
	out := make([]backends.KV, len(p.Keys))
	for i, k := range p.Keys {
		out[i] = backends.KV{Key: k}
		if _, live := v[3*i].(string); live { // an absent key's version is the integer 0
			out[i] = kvFrom(k, v[3*i], v[3*i+1], v[3*i+2])
		}
	}
	return out, nil
}

// PutKVMany implements backends.KVBatcher in one run of the script.
func (b *Backend) PutKVMany(ctx context.Context, p backends.PutKVManyParams) ([]int64, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	if len(p.Puts) == 0 {
		return []int64{}, nil
	}
	args := make([]any, 0, 1+5*len(p.Puts))
	args = append(args, "putmany")
	for _, put := range p.Puts {
		args = append(args, put.Key, put.Value, put.IfVersion, record.Millis(put.ExpiresAt), record.Millis(backends.KVNow(put.Now)))
	}
	vs, err := b.kv(ctx, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redisbackend: put %d keys: %w", len(p.Puts), err)
	}
	if len(vs) != len(p.Puts) {
		return nil, fmt.Errorf("redisbackend: put %d keys: the script returned %d versions", len(p.Puts), len(vs))
	}
	return vs, nil
}

// DeleteKV implements backends.KVStore.
func (b *Backend) DeleteKV(ctx context.Context, p backends.DeleteKVParams) error {
	if err := b.gate.Valid(ctx, p); err != nil {
		return err
	}
	n, err := b.kv(ctx, "delete", p.Key, p.IfVersion, record.Millis(backends.KVNow(time.Time{}))).Int64()
	if err != nil {
		return fmt.Errorf("redisbackend: delete key %s: %w", p.Key, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: key %s is not at version %d", job.ErrConflict, p.Key, p.IfVersion)
	}
	return nil
}

// ListKV implements backends.KVStore.
func (b *Backend) ListKV(ctx context.Context, p backends.ListKVParams) ([]backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	v, err := b.kvRead(ctx, "list", p.Prefix, record.Millis(backends.KVNow(p.Now))).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisbackend: list keys: %w", err)
	}
	var out []backends.KV
	for i := 0; i+3 < len(v); i += 4 {
		out = append(out, kvFrom(str(v[i]), v[i+1], v[i+2], v[i+3]))
	}
	return out, nil
}
