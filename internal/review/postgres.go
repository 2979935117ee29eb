package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresStore keeps reviews in PostgreSQL, shared by every replica that
// points at the same database (the gallery store's database may be the
// same one: the tables and the schema version are the reviews' own).
type PostgresStore struct {
	pool *pgxpool.Pool
}

// Interface guard.
var _ Store = (*PostgresStore)(nil)

// migrations[v] brings the tables from schema version v to v+1. They run
// in one transaction under an advisory lock, so replicas starting
// together do not race and a failure leaves the database as it was; the
// version is kept in visionserve_reviews_schema.
var migrations = [][]string{
	// 1: reviews, keyed by tenant and id (bytewise order, as in the
	// embedded store, so listings page the same way on both).
	{
		`CREATE TABLE visionserve_reviews (
			tenant  text COLLATE "C" NOT NULL,
			id      text COLLATE "C" NOT NULL,
			created timestamptz NOT NULL,
			model   text NOT NULL,
			meta    jsonb NOT NULL,
			image   bytea NOT NULL,
			PRIMARY KEY (tenant, id))`,
	},
}

// OpenPostgres connects to the database named by dsn (a postgres:// URL or
// keyword/value string; the password may come from PGPASSWORD or a
// .pgpass file instead) and creates or migrates the tables if needed.
func OpenPostgres(ctx context.Context, dsn string, maxConns int) (*PostgresStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("review store: postgres connection string: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("review store: %w", err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return migrate(ctx, tx) }); err != nil {
		pool.Close()
		return nil, fmt.Errorf("review store: create tables: %w", pgErr(err))
	}
	return &PostgresStore{pool: pool}, nil
}

// migrate runs the migrations from the database's version to the latest.
func migrate(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_reviews_schema'))`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS visionserve_reviews_schema (
		id      int PRIMARY KEY CHECK (id = 1),
		version int NOT NULL)`); err != nil {
		return err
	}
	var version int
	err := tx.QueryRow(ctx, `SELECT version FROM visionserve_reviews_schema WHERE id = 1`).Scan(&version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d; this visionserve reads %d and earlier", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrating to schema version %d: %w", v+1, err)
			}
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO visionserve_reviews_schema (id, version) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version`, len(migrations))
	return err
}

// Add implements Store. A per-tenant advisory lock orders the count and
// the insert, so concurrent writers on several replicas cannot pass the
// bound together.
func (s *PostgresStore) Add(ctx context.Context, r Review, max int) error {
	meta, err := json.Marshal(r)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if max > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_reviews'), hashtext($1))`, r.Tenant); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM visionserve_reviews WHERE tenant = $1`, r.Tenant).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return limitErr(max)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO visionserve_reviews (tenant, id, created, model, meta, image) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.Tenant, r.ID, r.Created, r.Model.Name, meta, r.Image)
		return err
	})
	return pgErr(err)
}

// Get implements Store.
func (s *PostgresStore) Get(ctx context.Context, tenant, id string) (Review, error) {
	var meta, img []byte
	err := s.pool.QueryRow(ctx, `SELECT meta, image FROM visionserve_reviews WHERE tenant = $1 AND id = $2`, tenant, id).Scan(&meta, &img)
	if errors.Is(err, pgx.ErrNoRows) {
		return Review{}, ErrNotFound
	}
	if err != nil {
		return Review{}, pgErr(err)
	}
	r, err := decode(tenant, meta, nil)
	r.Image = img
	return r, err
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context, tenant string, p Page) ([]Review, bool, error) {
	return s.page(ctx, tenant, p.After, p.Limit, false)
}

func (s *PostgresStore) page(ctx context.Context, tenant, after string, limit int, images bool) ([]Review, bool, error) {
	q := `SELECT meta, NULL::bytea FROM visionserve_reviews WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`
	if images {
		q = `SELECT meta, image FROM visionserve_reviews WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`
	}
	rows, err := s.pool.Query(ctx, q, tenant, after, limit+1)
	if err != nil {
		return nil, false, pgErr(err)
	}
	defer rows.Close()
	var out []Review
	for rows.Next() {
		var meta, img []byte
		if err := rows.Scan(&meta, &img); err != nil {
			return nil, false, pgErr(err)
		}
		r, err := decode(tenant, meta, nil)
		if err != nil {
			return nil, false, err
		}
		r.Image = img
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, pgErr(err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// Each implements Store, in pages, so no query stays open while the
// caller writes to a slow client.
func (s *PostgresStore) Each(ctx context.Context, tenant string, fn func(Review) error) error {
	return eachPage(ctx, fn, func(after string) ([]Review, bool, error) {
		return s.page(ctx, tenant, after, eachBatch, true)
	})
}

// Delete implements Store.
func (s *PostgresStore) Delete(ctx context.Context, tenant, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM visionserve_reviews WHERE tenant = $1 AND id = $2`, tenant, id)
	if err != nil {
		return pgErr(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// Close implements Store.
func (s *PostgresStore) Close() error {
	s.pool.Close()
	return nil
}

// pgErr marks failures to reach the database (not SQL errors, not the
// caller's cancellation, not the package's own errors) as ErrUnavailable.
func pgErr(err error) error {
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrLimit) || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
