package gallery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keypg"
)

// ErrUnavailable wraps failures to reach the shared store (network,
// server down); transports answer them with 503 and a retry hint.
var ErrUnavailable = errors.New("gallery store unavailable")

// PostgresStore keeps galleries in PostgreSQL, shared by every replica
// that points at the same database. Besides the galleries and faces it
// keeps a change log: every write takes the next number from a one-row
// counter (whose row lock is held until commit, so numbers are gapless and
// commit in order), records the change under it and notifies the channel
// in the same transaction. Replicas follow the log (Feed).
type PostgresStore struct {
	pool *pgxpool.Pool
	dsn  string
	keys *keys.Ring
}

// Interface guards.
var (
	_ Store = (*PostgresStore)(nil)
	_ Feed  = (*PostgresStore)(nil)
)

// NotifyChannel is the LISTEN/NOTIFY channel of the change log.
const NotifyChannel = "visionserve_galleries"

// migrations[v] brings the tables from schema version v to v+1; a new
// database runs them all. They run in one transaction under an advisory
// lock, so replicas starting together do not race, and a failure leaves
// the database as it was. The version is kept in visionserve_schema
// (a database of version 1, which predates that table, is recognised by
// its galleries table).
var migrations = [][]string{
	// 1: galleries, faces and the change log.
	{
		`CREATE TABLE IF NOT EXISTS visionserve_galleries (
			name    text PRIMARY KEY,
			created timestamptz NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS visionserve_faces (
			id        text PRIMARY KEY,
			gallery   text NOT NULL REFERENCES visionserve_galleries(name) ON DELETE CASCADE,
			subject   text NOT NULL,
			model     text NOT NULL,
			embedding bytea NOT NULL,
			created   timestamptz NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS visionserve_faces_subject ON visionserve_faces (gallery, subject)`,
		// Added with embedder swaps: AddFace asks which embedders a
		// gallery's faces carry.
		`CREATE INDEX IF NOT EXISTS visionserve_faces_model ON visionserve_faces (gallery, model)`,
		`CREATE TABLE IF NOT EXISTS visionserve_changes (
			seq     bigint PRIMARY KEY,
			op      text NOT NULL,
			gallery text NOT NULL,
			subject text NOT NULL DEFAULT '',
			face_id text NOT NULL DEFAULT '',
			at      timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS visionserve_seq (
			id  int PRIMARY KEY CHECK (id = 1),
			seq bigint NOT NULL)`,
		`INSERT INTO visionserve_seq (id, seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`,
	},
	// 2: galleries belong to a tenant. Existing rows get the default
	// tenant (''); a gallery is keyed by (tenant, name). Names compare
	// and sort bytewise (COLLATE "C"), as in the embedded store, so
	// listings page the same way on both.
	{
		`ALTER TABLE visionserve_galleries ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT ''`,
		`ALTER TABLE visionserve_faces ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT ''`,
		`ALTER TABLE visionserve_changes ADD COLUMN tenant text NOT NULL DEFAULT ''`,
		`DROP INDEX visionserve_faces_subject`,
		`DROP INDEX visionserve_faces_model`,
		`ALTER TABLE visionserve_faces DROP CONSTRAINT visionserve_faces_gallery_fkey`,
		`ALTER TABLE visionserve_galleries DROP CONSTRAINT visionserve_galleries_pkey`,
		`ALTER TABLE visionserve_galleries ALTER COLUMN name TYPE text COLLATE "C"`,
		`ALTER TABLE visionserve_faces ALTER COLUMN gallery TYPE text COLLATE "C", ALTER COLUMN subject TYPE text COLLATE "C"`,
		`ALTER TABLE visionserve_galleries ADD CONSTRAINT visionserve_galleries_pkey PRIMARY KEY (tenant, name)`,
		`ALTER TABLE visionserve_faces ADD CONSTRAINT visionserve_faces_gallery_fkey
			FOREIGN KEY (tenant, gallery) REFERENCES visionserve_galleries (tenant, name) ON DELETE CASCADE`,
		`CREATE INDEX visionserve_faces_subject ON visionserve_faces (tenant, gallery, subject)`,
		`CREATE INDEX visionserve_faces_model ON visionserve_faces (tenant, gallery, model)`,
	},
	// 3: the keyring of the data keys that seal embeddings at rest
	// (package keys); a row only once encryption is on.
	{keypg.CreateTable(keyringTable)},
}

// keyringTable holds the store's keyring.
const keyringTable = "visionserve_gallery_keyring"

// OpenPostgres connects to the database named by dsn (a postgres:// URL or
// keyword/value string; the password may come from PGPASSWORD or a
// .pgpass file instead), creates or migrates the tables if needed, and
// opens the keyring with enc (see keys.Open: a database with a keyring
// needs its KEK).
func OpenPostgres(ctx context.Context, dsn string, maxConns int, enc keys.Config) (*PostgresStore, error) {
	s, err := openPostgres(ctx, dsn, maxConns, len(migrations))
	if err != nil {
		return nil, err
	}
	kr := keypg.Keyring{Pool: s.pool, Table: keyringTable}
	if s.keys, err = keys.Open(ctx, enc, keys.Store{Domain: keyDomain, Keyring: kr, Records: s}); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("gallery store: %w", pgErr(err))
	}
	return s, nil
}

// openPostgres is OpenPostgres migrating up to schema version target,
// without encryption (tests make databases of earlier versions with it).
func openPostgres(ctx context.Context, dsn string, maxConns, target int) (*PostgresStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("gallery store: postgres connection string: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("gallery store: %w", err)
	}
	s := &PostgresStore{pool: pool, dsn: dsn, keys: keys.Clear(keyDomain)}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return migrate(ctx, tx, target) }); err != nil {
		pool.Close()
		return nil, fmt.Errorf("gallery store: create tables: %w", pgErr(err))
	}
	return s, nil
}

// migrate runs the migrations from the database's version to target.
func migrate(ctx context.Context, tx pgx.Tx, target int) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_gallery_schema'))`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS visionserve_schema (
		id      int PRIMARY KEY CHECK (id = 1),
		version int NOT NULL)`); err != nil {
		return err
	}
	var version int
	err := tx.QueryRow(ctx, `SELECT version FROM visionserve_schema WHERE id = 1`).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `SELECT CASE WHEN to_regclass('visionserve_galleries') IS NULL THEN 0 ELSE 1 END`).Scan(&version)
	}
	if err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d; this visionserve reads %d and earlier", version, len(migrations))
	}
	for v := version; v < target; v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrating to schema version %d: %w", v+1, err)
			}
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO visionserve_schema (id, version) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version`, max(version, target))
	return err
}

// Close implements Store.
func (s *PostgresStore) Close() error {
	s.pool.Close()
	return nil
}

// Load implements Store: one repeatable-read snapshot, so the galleries,
// faces and sequence number agree.
func (s *PostgresStore) Load(ctx context.Context, fn func(Event) error) (uint64, error) {
	var seq uint64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT seq FROM visionserve_seq WHERE id = 1`).Scan(&seq); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT tenant, name, created FROM visionserve_galleries ORDER BY tenant, name`)
		if err != nil {
			return err
		}
		var gals []Event
		for rows.Next() {
			ev := Event{Op: OpCreateGallery}
			if err := rows.Scan(&ev.Gallery.Tenant, &ev.Gallery.Name, &ev.Created); err != nil {
				rows.Close()
				return err
			}
			gals = append(gals, ev)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, ev := range gals {
			if err := fn(ev); err != nil {
				return err
			}
		}
		rows, err = tx.Query(ctx, `SELECT id, tenant, gallery, subject, model, embedding, created FROM visionserve_faces`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f Face
			var emb []byte
			if err := rows.Scan(&f.ID, &f.Gallery.Tenant, &f.Gallery.Name, &f.Subject, &f.Model, &emb, &f.Created); err != nil {
				return err
			}
			if f.Embedding, err = decodeEmbedding(s.keys, sealRef(f.Gallery, f.Subject, f.ID, f.Model), emb); err != nil {
				return fmt.Errorf("face %s: %w", f.ID, err)
			}
			if err := fn(Event{Op: OpAddFace, Gallery: f.Gallery, Subject: f.Subject, Face: &f}); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("gallery store: %w", pgErr(err))
	}
	return seq, nil
}

// change records a committed write in the log: next sequence number, log
// row, notification. It must be the transaction's last step.
func change(ctx context.Context, tx pgx.Tx, op Op, g Ref, subject, faceID string) (uint64, error) {
	var seq uint64
	if err := tx.QueryRow(ctx, `UPDATE visionserve_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO visionserve_changes (seq, op, tenant, gallery, subject, face_id) VALUES ($1, $2, $3, $4, $5, $6)`,
		seq, string(op), g.Tenant, g.Name, subject, faceID); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatUint(seq, 10)); err != nil {
		return 0, err
	}
	return seq, nil
}

// lockGallery locks g's row until the transaction ends, ordering the
// writes to one gallery; ErrGalleryNotFound when there is none.
func lockGallery(ctx context.Context, tx pgx.Tx, g Ref) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM visionserve_galleries WHERE tenant = $1 AND name = $2 FOR UPDATE`, g.Tenant, g.Name).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrGalleryNotFound
	}
	return err
}

// CreateGallery implements Store.
func (s *PostgresStore) CreateGallery(ctx context.Context, g Ref, at time.Time) (Event, bool, error) {
	ev := Event{Op: OpCreateGallery, Gallery: g, Created: at.UTC()}
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO visionserve_galleries (tenant, name, created) VALUES ($1, $2, $3) ON CONFLICT (tenant, name) DO NOTHING`,
			g.Tenant, g.Name, ev.Created)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		created = true
		ev.Seq, err = change(ctx, tx, OpCreateGallery, g, "", "")
		return err
	})
	if err != nil {
		return Event{}, false, fmt.Errorf("gallery store: %w", pgErr(err))
	}
	if !created {
		return Event{}, false, nil
	}
	return ev, true, nil
}

// DeleteGallery implements Store. The gallery's row is locked first, so an
// enroll into it either commits before (and its face is counted and
// removed) or finds no gallery.
func (s *PostgresStore) DeleteGallery(ctx context.Context, g Ref) (Event, int, error) {
	ev := Event{Op: OpDeleteGallery, Gallery: g}
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockGallery(ctx, tx, g); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM visionserve_faces WHERE tenant = $1 AND gallery = $2`, g.Tenant, g.Name)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `DELETE FROM visionserve_galleries WHERE tenant = $1 AND name = $2`, g.Tenant, g.Name); err != nil {
			return err
		}
		ev.Seq, err = change(ctx, tx, OpDeleteGallery, g, "", "")
		return err
	})
	if err != nil {
		return Event{}, 0, storePGErr(err)
	}
	return ev, n, nil
}

// AddFace implements Store. Replicas may enroll into one gallery with
// different embedders during a swap, so the gallery's row is locked and
// its faces' embedder ids checked in the same transaction: a gallery never
// holds a new face of an embedder none of its faces carry.
func (s *PostgresStore) AddFace(ctx context.Context, f Face) (Event, error) {
	ev := Event{Op: OpAddFace, Gallery: f.Gallery, Subject: f.Subject, Face: &f}
	g := f.Gallery
	emb, err := encodeEmbedding(s.keys, sealRef(g, f.Subject, f.ID, f.Model), f.Embedding)
	if err != nil {
		return Event{}, storePGErr(err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockGallery(ctx, tx, g); err != nil {
			return err
		}
		// Two range scans instead of model <> $3, which would read every
		// face of the same embedder.
		var same bool
		var other string
		if err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM visionserve_faces WHERE tenant = $1 AND gallery = $2 AND model = $3),
			COALESCE((SELECT model FROM visionserve_faces WHERE tenant = $1 AND gallery = $2 AND model < $3 LIMIT 1),
			         (SELECT model FROM visionserve_faces WHERE tenant = $1 AND gallery = $2 AND model > $3 LIMIT 1), '')`,
			g.Tenant, g.Name, f.Model).Scan(&same, &other); err != nil {
			return err
		}
		if !same && other != "" {
			return &MismatchError{Gallery: g.Name, Held: other, Model: f.Model}
		}
		_, err := tx.Exec(ctx, `INSERT INTO visionserve_faces (id, tenant, gallery, subject, model, embedding, created) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			f.ID, g.Tenant, g.Name, f.Subject, f.Model, emb, f.Created)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation
			return ErrGalleryNotFound
		}
		if err != nil {
			return err
		}
		ev.Seq, err = change(ctx, tx, OpAddFace, g, f.Subject, f.ID)
		return err
	})
	if err != nil {
		return Event{}, storePGErr(err)
	}
	return ev, nil
}

// DeleteSubject implements Store.
func (s *PostgresStore) DeleteSubject(ctx context.Context, g Ref, subject string) (Event, int, error) {
	ev := Event{Op: OpDeleteSubject, Gallery: g, Subject: subject}
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM visionserve_faces WHERE tenant = $1 AND gallery = $2 AND subject = $3`, g.Tenant, g.Name, subject)
		if err != nil {
			return err
		}
		if n = int(tag.RowsAffected()); n == 0 {
			return s.missing(ctx, tx, g, ErrSubjectNotFound)
		}
		ev.Seq, err = change(ctx, tx, OpDeleteSubject, g, subject, "")
		return err
	})
	if err != nil {
		return Event{}, 0, storePGErr(err)
	}
	return ev, n, nil
}

// missing says why a query found nothing: ErrGalleryNotFound when g is
// absent, else otherwise (nil: an empty answer is right).
func (s *PostgresStore) missing(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, g Ref, otherwise error) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM visionserve_galleries WHERE tenant = $1 AND name = $2)`, g.Tenant, g.Name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return ErrGalleryNotFound
	}
	return otherwise
}

// Faces implements Store.
func (s *PostgresStore) Faces(ctx context.Context, g Ref, subject string) ([]FaceInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, created FROM visionserve_faces WHERE tenant = $1 AND gallery = $2 AND subject = $3 ORDER BY created, id`,
		g.Tenant, g.Name, subject)
	if err != nil {
		return nil, storePGErr(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FaceInfo, error) {
		var fi FaceInfo
		err := row.Scan(&fi.ID, &fi.Created)
		fi.Created = fi.Created.UTC()
		return fi, err
	})
	if err != nil {
		return nil, storePGErr(err)
	}
	if len(out) == 0 {
		return nil, storePGErr(s.missing(ctx, s.pool, g, ErrSubjectNotFound))
	}
	return out, nil
}

// Subjects implements Store: the (tenant, gallery, subject) index walked
// from after on, a group per subject.
func (s *PostgresStore) Subjects(ctx context.Context, g Ref, after string, limit int) ([]SubjectInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject, count(*) FROM visionserve_faces
		WHERE tenant = $1 AND gallery = $2 AND subject > $3
		GROUP BY subject ORDER BY subject LIMIT $4`, g.Tenant, g.Name, after, limit)
	if err != nil {
		return nil, storePGErr(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SubjectInfo, error) {
		var si SubjectInfo
		err := row.Scan(&si.Name, &si.Faces)
		return si, err
	})
	if err != nil {
		return nil, storePGErr(err)
	}
	if len(out) == 0 {
		return nil, storePGErr(s.missing(ctx, s.pool, g, nil))
	}
	return out, nil
}

// Changes implements Feed. An add whose face was deleted since comes back
// with a nil Face; a later delete event follows it in the log.
func (s *PostgresStore) Changes(ctx context.Context, after uint64, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.seq, c.op, c.tenant, c.gallery, c.subject, c.face_id, f.model, f.embedding, f.created, g.created
		FROM visionserve_changes c
		LEFT JOIN visionserve_faces f ON c.op = 'add_face' AND f.id = c.face_id
		LEFT JOIN visionserve_galleries g ON c.op = 'create_gallery' AND g.tenant = c.tenant AND g.name = c.gallery
		WHERE c.seq > $1 ORDER BY c.seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, storePGErr(err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			ev           Event
			op, faceID   string
			model        *string
			emb          []byte
			fc, gCreated *time.Time
		)
		if err := rows.Scan(&ev.Seq, &op, &ev.Gallery.Tenant, &ev.Gallery.Name, &ev.Subject, &faceID, &model, &emb, &fc, &gCreated); err != nil {
			return nil, storePGErr(err)
		}
		ev.Op = Op(op)
		switch ev.Op {
		case OpCreateGallery:
			if gCreated != nil {
				ev.Created = gCreated.UTC()
			}
		case OpAddFace:
			if model != nil && fc != nil {
				v, err := decodeEmbedding(s.keys, sealRef(ev.Gallery, ev.Subject, faceID, *model), emb)
				if err != nil {
					return nil, fmt.Errorf("gallery store: face %s: %w", faceID, err)
				}
				ev.Face = &Face{ID: faceID, Gallery: ev.Gallery, Subject: ev.Subject, Model: *model, Embedding: v, Created: fc.UTC()}
			}
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, storePGErr(err)
	}
	return out, nil
}

// Keys returns the ring that seals the store's embeddings.
func (s *PostgresStore) Keys() *keys.Ring { return s.keys }

// resealBatch is how many faces one query of Reseal reads.
const resealBatch = 256

// Reseal implements keys.Records: every face's embedding, in id order, a
// batch per query; a new embedding replaces the old one only if the row
// still holds the old one.
func (s *PostgresStore) Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error {
	after := ""
	for {
		rows, err := s.pool.Query(ctx, `SELECT id, tenant, gallery, subject, model, embedding FROM visionserve_faces
			WHERE id > $1 ORDER BY id LIMIT $2`, after, resealBatch)
		if err != nil {
			return storePGErr(err)
		}
		type row struct {
			f   Face
			emb []byte
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.f.ID, &x.f.Gallery.Tenant, &x.f.Gallery.Name, &x.f.Subject, &x.f.Model, &x.emb)
			return x, err
		})
		if err != nil {
			return storePGErr(err)
		}
		for _, x := range batch {
			after = x.f.ID
			sealed, err := fn(sealRef(x.f.Gallery, x.f.Subject, x.f.ID, x.f.Model), x.emb)
			if sealed == nil || err != nil {
				if err != nil {
					return err
				}
				continue
			}
			if _, err := s.pool.Exec(ctx, `UPDATE visionserve_faces SET embedding = $2 WHERE id = $1 AND embedding = $3`, x.f.ID, sealed, x.emb); err != nil {
				return storePGErr(err)
			}
		}
		if len(batch) < resealBatch {
			return nil
		}
	}
}

// Listen implements Feed on a dedicated connection (LISTEN needs one
// session), reconnecting with backoff.
func (s *PostgresStore) Listen(ctx context.Context, wake func()) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			break
		}
		_ = err // the caller polls meanwhile; retry quietly
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

func (s *PostgresStore) listenOnce(ctx context.Context, wake func()) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	wake() // changes made while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}

// Prune implements Feed.
func (s *PostgresStore) Prune(ctx context.Context, keep time.Duration) error {
	_, err := s.pool.Exec(ctx, `
		DELETE FROM visionserve_changes
		WHERE at < now() - make_interval(secs => $1)
		  AND seq < (SELECT max(seq) FROM visionserve_changes)`, keep.Seconds())
	return storePGErr(err)
}

// storePGErr passes sentinels through, marks connection failures
// ErrUnavailable and wraps the rest.
func storePGErr(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrGalleryNotFound), errors.Is(err, ErrSubjectNotFound), errors.Is(err, ErrEmbedderMismatch):
		return err
	}
	return fmt.Errorf("gallery store: %w", pgErr(err))
}

// pgErr marks errors that did not come from the server (dial, I/O, a
// closed pool) as ErrUnavailable.
func pgErr(err error) error {
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
