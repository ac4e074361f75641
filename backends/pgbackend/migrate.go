package pgbackend

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema version with its up and down steps.
type migration struct {
	version  int
	up, down string
}

func migrations() []migration {
	byVersion := map[int]*migration{}
	entries, _ := fs.ReadDir(migrationFiles, "migrations")
	for _, e := range entries {
		name := e.Name() // 0001_jobs.up.sql
		v, err := strconv.Atoi(name[:4])
		if err != nil {
			panic("pgbackend: bad migration name " + name) // embedded: caught by tests
		}
		body, _ := migrationFiles.ReadFile("migrations/" + name)
		m := byVersion[v]
		if m == nil {
			m = &migration{version: v}
			byVersion[v] = m
		}
		if strings.HasSuffix(name, ".down.sql") {
			m.down = string(body)
		} else {
			m.up = string(body)
		}
	}
	var out []migration
	for _, m := range byVersion {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out
}

// LatestVersion is the schema version this package's code needs.
func LatestVersion() int {
	ms := migrations()
	return ms[len(ms)-1].version
}

// MigrateParams is the input of Migrate.
type MigrateParams struct {
	// Schema to migrate. Default "conveyor".
	Schema string
	// To is the version to end at: LatestVersion() when zero, down to an
	// empty schema at -1 (every down step).
	To int
}

// Migrate brings the schema to p.To, applying up or down steps in order,
// each in its own transaction, under an advisory lock so that processes
// starting together do not race. It returns the version reached.
func Migrate(ctx context.Context, pool *pgxpool.Pool, p MigrateParams) (int, error) {
	if p.Schema == "" {
		p.Schema = defaultSchema
	}
	target := p.To
	if target == 0 {
		target = LatestVersion()
	}
	if target < 0 {
		target = 0
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgbackend: migrate: %w", err)
	}
	defer conn.Release()
	lock := "conveyor-migrate:" + p.Schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", lock); err != nil {
		return 0, fmt.Errorf("pgbackend: migrate lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)

	schema := pgx.Identifier{p.Schema}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %s;
		CREATE TABLE IF NOT EXISTS %s.schema_versions (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		schema, schema)); err != nil {
		return 0, fmt.Errorf("pgbackend: migrate: %w", err)
	}
	current, err := schemaVersion(ctx, conn.Conn(), schema)
	if err != nil {
		return 0, err
	}
	expand := func(sql string) string {
		return strings.NewReplacer("{{schema}}", schema, "{{channel}}", quoteLiteral(channelName(p.Schema))).Replace(sql)
	}
	ms := migrations()
	step := func(sql, record string, v int) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, expand(sql)); err != nil {
			return fmt.Errorf("pgbackend: migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(record, schema), v); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	for _, m := range ms {
		if m.version > current && m.version <= target {
			if err := step(m.up, "INSERT INTO %s.schema_versions (version) VALUES ($1)", m.version); err != nil {
				return current, err
			}
			current = m.version
		}
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.version <= current && m.version > target {
			if err := step(m.down, "DELETE FROM %s.schema_versions WHERE version = $1", m.version); err != nil {
				return current, err
			}
			current = m.version - 1
		}
	}
	return current, nil
}

func schemaVersion(ctx context.Context, conn *pgx.Conn, schema string) (int, error) {
	var v int
	err := conn.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(max(version), 0) FROM %s.schema_versions", schema)).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("pgbackend: reading schema version: %w", err)
	}
	return v, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
