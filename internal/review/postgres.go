package review

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keypg"
)

// PostgresStore keeps reviews in PostgreSQL, shared by every replica that
// points at the same database (the gallery store's database may be the
// same one: the tables and the schema version are the reviews' own).
type PostgresStore struct {
	pool *pgxpool.Pool
	keys *keys.Ring
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
	// 2: a review's JSON may be sealed (package keys), so it is bytes;
	// and the keyring of the data keys that seal reviews, a row only
	// once encryption is on.
	{
		`ALTER TABLE visionserve_reviews ALTER COLUMN meta TYPE bytea USING convert_to(meta::text, 'UTF8')`,
		keypg.CreateTable(keyringTable),
	},
}

// keyringTable holds the store's keyring.
const keyringTable = "visionserve_reviews_keyring"

// OpenPostgres connects to the database named by dsn (a postgres:// URL or
// keyword/value string; the password may come from PGPASSWORD or a
// .pgpass file instead), creates or migrates the tables if needed, and
// opens the keyring with enc (see keys.Open: a database with a keyring
// needs its KEK).
func OpenPostgres(ctx context.Context, dsn string, maxConns int, enc keys.Config) (*PostgresStore, error) {
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
	s := &PostgresStore{pool: pool}
	kr := keypg.Keyring{Pool: pool, Table: keyringTable}
	if s.keys, err = keys.Open(ctx, enc, keys.Store{Domain: keyDomain, Keyring: kr, Records: s}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("review store: %w", pgErr(err))
	}
	return s, nil
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
	meta, image, err := seal(s.keys, r)
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
			r.Tenant, r.ID, r.Created, r.Model.Name, meta, image)
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
	return decode(s.keys, tenant, id, meta, img)
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context, tenant string, p Page) ([]Review, bool, error) {
	return s.page(ctx, tenant, p.After, p.Limit, false)
}

func (s *PostgresStore) page(ctx context.Context, tenant, after string, limit int, images bool) ([]Review, bool, error) {
	q := `SELECT id, meta, NULL::bytea FROM visionserve_reviews WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`
	if images {
		q = `SELECT id, meta, image FROM visionserve_reviews WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`
	}
	rows, err := s.pool.Query(ctx, q, tenant, after, limit+1)
	if err != nil {
		return nil, false, pgErr(err)
	}
	defer rows.Close()
	var out []Review
	for rows.Next() {
		var id string
		var meta, img []byte
		if err := rows.Scan(&id, &meta, &img); err != nil {
			return nil, false, pgErr(err)
		}
		r, err := decode(s.keys, tenant, id, meta, img)
		if err != nil {
			return nil, false, err
		}
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

// Keys returns the ring that seals the store's reviews.
func (s *PostgresStore) Keys() *keys.Ring { return s.keys }

// Reseal implements keys.Records: every review's JSON and image, a batch
// of rows at a time in key order, each row rewritten only if unchanged.
func (s *PostgresStore) Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error {
	type row struct{ tenant, id string }
	after := row{}
	for {
		rows, err := s.pool.Query(ctx, `SELECT tenant, id FROM visionserve_reviews
			WHERE (tenant, id) > ($1, $2) ORDER BY tenant, id LIMIT $3`, after.tenant, after.id, eachBatch)
		if err != nil {
			return pgErr(err)
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var k row
			return k, r.Scan(&k.tenant, &k.id)
		})
		if err != nil {
			return pgErr(err)
		}
		for _, k := range batch {
			after = k
			var meta, img []byte
			err := s.pool.QueryRow(ctx, `SELECT meta, image FROM visionserve_reviews WHERE tenant = $1 AND id = $2`, k.tenant, k.id).Scan(&meta, &img)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // deleted meanwhile
			}
			if err != nil {
				return pgErr(err)
			}
			newMeta, err := fn(ref(k.tenant, k.id, "reviews"), meta)
			if err != nil {
				return err
			}
			newImg, err := fn(ref(k.tenant, k.id, "images"), img)
			if err != nil {
				return err
			}
			if newMeta == nil && newImg == nil {
				continue
			}
			_, err = s.pool.Exec(ctx, `UPDATE visionserve_reviews SET meta = coalesce($3, meta), image = coalesce($4, image)
				WHERE tenant = $1 AND id = $2 AND meta = $5 AND image = $6`, k.tenant, k.id, newMeta, newImg, meta, img)
			if err != nil {
				return pgErr(err)
			}
		}
		if len(batch) < eachBatch {
			return nil
		}
	}
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
