package sqlitebackend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var (
	_ backends.KVStore   = (*Backend)(nil)
	_ backends.KVBatcher = (*Backend)(nil)
)

// liveClause keeps keys that never expire or expire after the parameter.
const liveClause = `(expires_at = 0 OR expires_at > ?)`

// GetKV implements backends.KVStore.
func (b *Backend) GetKV(ctx context.Context, p backends.GetKVParams) (backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.KV{}, err
	}
	kv := backends.KV{Key: p.Key}
	var exp int64
	err := b.roStmts[sqlGetKV].QueryRowContext(ctx, p.Key, record.Micros(backends.KVNow(p.Now))).Scan(&kv.Value, &kv.Version, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return kv, fmt.Errorf("%w: key %s", job.ErrNotFound, p.Key)
	}
	if err != nil {
		return kv, fmt.Errorf("sqlitebackend: get key %s: %w", p.Key, err)
	}
	kv.ExpiresAt = record.FromMicros(exp)
	return kv, nil
}

// PutKV implements backends.KVStore.
func (b *Backend) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return 0, err
	}
	var next int64
	err := b.write(ctx, func(tx *sql.Tx) (err error) {
		next, err = b.putKV(ctx, tx, p)
		return err
	})
	if err != nil && !errors.Is(err, job.ErrConflict) {
		return 0, fmt.Errorf("sqlitebackend: put key %s: %w", p.Key, err)
	}
	return next, err
}

// putKV is PutKV inside tx: the new version, or an error wrapping
// job.ErrConflict when the key is not at p.IfVersion.
func (b *Backend) putKV(ctx context.Context, tx *sql.Tx, p backends.PutKVParams) (int64, error) {
	now := record.Micros(backends.KVNow(p.Now))
	var version, exp int64
	err := b.prepared(ctx, tx, sqlKVVersion).QueryRowContext(ctx, p.Key).Scan(&version, &exp)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	have := version
	if exp != 0 && exp <= now {
		have = 0 // expired: absent
	}
	if have != p.IfVersion {
		return 0, fmt.Errorf("%w: key %s is at version %d, not %d", job.ErrConflict, p.Key, have, p.IfVersion)
	}
	_, err = b.prepared(ctx, tx, sqlKVPut).ExecContext(ctx, p.Key, record.NonNil(p.Value), version+1, record.Micros(p.ExpiresAt))
	return version + 1, err
}

// GetKVMany implements backends.KVBatcher in one query.
func (b *Backend) GetKVMany(ctx context.Context, p backends.GetKVManyParams) ([]backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	slots := record.NewKVSlots(p.Keys)
	if len(p.Keys) == 0 {
		return slots.KVs, nil
	}
	keys, err := json.Marshal(p.Keys)
	if err != nil {
		return nil, fmt.Errorf("sqlitebackend: get %d keys: %w", len(p.Keys), err)
	}
	rows, err := b.roStmts[sqlGetKVMany].QueryContext(ctx, string(keys), record.Micros(backends.KVNow(p.Now)))
	if err != nil {
		return nil, fmt.Errorf("sqlitebackend: get %d keys: %w", len(p.Keys), err)
	}
	defer rows.Close()
	for rows.Next() {
		kv, err := scanKV(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitebackend: get %d keys: %w", len(p.Keys), err)
		}
		slots.Put(kv)
	}
	return slots.KVs, rows.Err()
}

// scanKV scans a row of key, value, version, expires_at.
func scanKV(rows *sql.Rows) (backends.KV, error) {
	var kv backends.KV
	var exp int64
	err := rows.Scan(&kv.Key, &kv.Value, &kv.Version, &exp)
	kv.ExpiresAt = record.FromMicros(exp)
	return kv, err
}

// PutKVMany implements backends.KVBatcher in one write transaction.
func (b *Backend) PutKVMany(ctx context.Context, p backends.PutKVManyParams) ([]int64, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	out := make([]int64, len(p.Puts))
	if len(p.Puts) == 0 {
		return out, nil
	}
	err := b.write(ctx, func(tx *sql.Tx) error {
		clear(out) // a retried transaction starts over
		for i, put := range p.Puts {
			v, err := b.putKV(ctx, tx, put)
			if err != nil && !errors.Is(err, job.ErrConflict) {
				return err
			}
			out[i] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitebackend: put %d keys: %w", len(p.Puts), err)
	}
	return out, nil
}

// DeleteKV implements backends.KVStore. The row stays, expired, so a
// re-created key continues the version sequence.
func (b *Backend) DeleteKV(ctx context.Context, p backends.DeleteKVParams) error {
	if err := b.gate.Valid(ctx, p); err != nil {
		return err
	}
	err := b.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE conveyor_kv SET value = x'', expires_at = 1
			WHERE key = ? AND (? = 0 OR (version = ? AND `+liveClause+`))`,
			p.Key, p.IfVersion, p.IfVersion, record.Micros(backends.KVNow(time.Time{})))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 && p.IfVersion != 0 {
			return fmt.Errorf("%w: key %s is not at version %d", job.ErrConflict, p.Key, p.IfVersion)
		}
		return nil
	})
	if err != nil && !errors.Is(err, job.ErrConflict) {
		return fmt.Errorf("sqlitebackend: delete key %s: %w", p.Key, err)
	}
	return err
}

// ListKV implements backends.KVStore.
func (b *Backend) ListKV(ctx context.Context, p backends.ListKVParams) ([]backends.KV, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	rows, err := b.ro.QueryContext(ctx, `SELECT key, value, version, expires_at FROM conveyor_kv
		WHERE substr(key, 1, length(?)) = ? AND `+liveClause+` ORDER BY key`,
		p.Prefix, p.Prefix, record.Micros(backends.KVNow(p.Now)))
	if err != nil {
		return nil, fmt.Errorf("sqlitebackend: list keys: %w", err)
	}
	defer rows.Close()
	var out []backends.KV
	for rows.Next() {
		kv, err := scanKV(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitebackend: list keys: %w", err)
		}
		out = append(out, kv)
	}
	return out, rows.Err()
}
