package platform

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// OpenDB connects to Postgres (DATABASE_URL, or the PG* variables when it is
// empty) with query tracing, waits up to connectTimeout for the server, and
// applies the migrations in migrations (files named NNN_description.sql,
// applied in order, each once, in a transaction) under a Postgres advisory
// lock so that replicas starting together do not race.
func OpenDB(ctx context.Context, databaseURL, service string, migrations fs.FS) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database config: %w", err)
	}
	pcfg.ConnConfig.Tracer = newDBTracer(pcfg.ConnConfig)
	pcfg.ConnConfig.ConnectTimeout = 5 * time.Second
	if pcfg.MaxConns < 10 {
		pcfg.MaxConns = 10
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	// The database may come up after us (a fresh cluster): retry, bounded.
	wctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	for {
		err = pool.Ping(wctx)
		if err == nil {
			break
		}
		select {
		case <-wctx.Done():
			pool.Close()
			return nil, fmt.Errorf("database not reachable within %s: %w", connectTimeout, err)
		case <-time.After(time.Second):
			slog.Warn("waiting for database", "err", err)
		}
	}
	if migrations != nil {
		if err := Migrate(ctx, pool, service, migrations); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

const connectTimeout = 60 * time.Second

// newDBTracer returns the pgx tracer: a client span (and a
// db.client.operation.duration sample) per query, prepare, batch, copy and
// connect. Statements carry $n placeholders only; parameter values are never
// recorded.
//
// Two of otelpgx's defaults cost CPU on every request for little insight
// and are off (docs/benchmarks-services.md, "Telemetry overhead"):
//   - pool acquire tracing: a span, a histogram sample and two copies of the
//     pool's whole config per acquire. Time waiting for a connection still
//     shows as the gap before the query span;
//   - per-query connection details: read through conn.Config(), which copies
//     the connection config on every query. The same attributes (server
//     address and port, database, user) are fixed per pool, so they are set
//     once here.
func newDBTracer(cc *pgx.ConnConfig) *otelpgx.Tracer {
	return otelpgx.NewTracer(
		otelpgx.WithDisableAcquireTracer(),
		otelpgx.WithDisableConnectionDetailsInAttributes(),
		// db.system.name is otelpgx's own default attribute.
		otelpgx.WithTracerAttributes(
			semconv.ServerAddress(cc.Host),
			semconv.ServerPort(int(cc.Port)),
			semconv.UserName(cc.User),
			semconv.DBNamespace(cc.Database),
		),
	)
}

// Migrate applies pending migrations under a session advisory lock keyed by service.
func Migrate(ctx context.Context, pool *pgxpool.Pool, service string, migrations fs.FS) error {
	files, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return err
	}
	type mig struct {
		version int
		name    string
	}
	var ms []mig
	for _, f := range files {
		v, err := strconv.Atoi(strings.SplitN(path.Base(f), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", f)
		}
		ms = append(ms, mig{v, f})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	h := fnv.New64a()
	h.Write([]byte("shop-migrations:" + service))
	key := int64(h.Sum64())
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := conn.Exec(lctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("schema_migrations: %w", err)
	}
	for _, m := range ms {
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version=$1)", m.version).Scan(&done); err != nil {
			return err
		}
		if done {
			continue
		}
		sql, err := fs.ReadFile(migrations, m.name)
		if err != nil {
			return err
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations(version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		slog.Info("migration applied", "migration", m.name)
	}
	return nil
}

// PingCheck is a readiness check for the pool.
func PingCheck(pool *pgxpool.Pool) Check {
	return Check{Name: "database", Func: pool.Ping}
}
