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
}

// Interface guards.
var (
	_ Store = (*PostgresStore)(nil)
	_ Feed  = (*PostgresStore)(nil)
)

// NotifyChannel is the LISTEN/NOTIFY channel of the change log.
const NotifyChannel = "visionserve_galleries"

// schema is version 1 of the tables. Creating them is idempotent and runs
// under an advisory lock, so replicas starting together do not race.
var schema = []string{
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
	// Added with embedder swaps: AddFace asks which embedders a gallery's
	// faces carry. Creating it on an existing database is harmless.
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
}

// OpenPostgres connects to the database named by dsn (a postgres:// URL or
// keyword/value string; the password may come from PGPASSWORD or a
// .pgpass file instead) and creates the tables if needed.
func OpenPostgres(ctx context.Context, dsn string, maxConns int) (*PostgresStore, error) {
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
	s := &PostgresStore{pool: pool, dsn: dsn}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_gallery_schema'))`); err != nil {
			return err
		}
		for _, stmt := range schema {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("gallery store: create tables: %w", pgErr(err))
	}
	return s, nil
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
		rows, err := tx.Query(ctx, `SELECT name, created FROM visionserve_galleries ORDER BY name`)
		if err != nil {
			return err
		}
		var gals []Event
		for rows.Next() {
			ev := Event{Op: OpCreateGallery}
			if err := rows.Scan(&ev.Gallery, &ev.Created); err != nil {
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
		rows, err = tx.Query(ctx, `SELECT id, gallery, subject, model, embedding, created FROM visionserve_faces`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f Face
			var emb []byte
			if err := rows.Scan(&f.ID, &f.Gallery, &f.Subject, &f.Model, &emb, &f.Created); err != nil {
				return err
			}
			if f.Embedding, err = decodeEmbedding(emb); err != nil {
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
func change(ctx context.Context, tx pgx.Tx, op Op, gallery, subject, faceID string) (uint64, error) {
	var seq uint64
	if err := tx.QueryRow(ctx, `UPDATE visionserve_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO visionserve_changes (seq, op, gallery, subject, face_id) VALUES ($1, $2, $3, $4, $5)`,
		seq, string(op), gallery, subject, faceID); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatUint(seq, 10)); err != nil {
		return 0, err
	}
	return seq, nil
}

// CreateGallery implements Store.
func (s *PostgresStore) CreateGallery(ctx context.Context, name string, at time.Time) (Event, bool, error) {
	ev := Event{Op: OpCreateGallery, Gallery: name, Created: at.UTC()}
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO visionserve_galleries (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, ev.Created)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		created = true
		ev.Seq, err = change(ctx, tx, OpCreateGallery, name, "", "")
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

// AddFace implements Store. Replicas may enroll into one gallery with
// different embedders during a swap, so the gallery's row is locked and
// its faces' embedder ids checked in the same transaction: a gallery never
// holds a new face of an embedder none of its faces carry.
func (s *PostgresStore) AddFace(ctx context.Context, f Face) (Event, error) {
	ev := Event{Op: OpAddFace, Gallery: f.Gallery, Subject: f.Subject, Face: &f}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM visionserve_galleries WHERE name = $1 FOR UPDATE`, f.Gallery).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrGalleryNotFound
		}
		if err != nil {
			return err
		}
		// Two range scans instead of model <> $2, which would read every
		// face of the same embedder.
		var same bool
		var other string
		if err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM visionserve_faces WHERE gallery = $1 AND model = $2),
			COALESCE((SELECT model FROM visionserve_faces WHERE gallery = $1 AND model < $2 LIMIT 1),
			         (SELECT model FROM visionserve_faces WHERE gallery = $1 AND model > $2 LIMIT 1), '')`,
			f.Gallery, f.Model).Scan(&same, &other); err != nil {
			return err
		}
		if !same && other != "" {
			return &MismatchError{Gallery: f.Gallery, Held: other, Model: f.Model}
		}
		_, err = tx.Exec(ctx, `INSERT INTO visionserve_faces (id, gallery, subject, model, embedding, created) VALUES ($1, $2, $3, $4, $5, $6)`,
			f.ID, f.Gallery, f.Subject, f.Model, encodeEmbedding(f.Embedding), f.Created)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation
			return ErrGalleryNotFound
		}
		if err != nil {
			return err
		}
		ev.Seq, err = change(ctx, tx, OpAddFace, f.Gallery, f.Subject, f.ID)
		return err
	})
	if err != nil {
		return Event{}, storePGErr(err)
	}
	return ev, nil
}

// DeleteSubject implements Store.
func (s *PostgresStore) DeleteSubject(ctx context.Context, gallery, subject string) (Event, int, error) {
	ev := Event{Op: OpDeleteSubject, Gallery: gallery, Subject: subject}
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM visionserve_faces WHERE gallery = $1 AND subject = $2`, gallery, subject)
		if err != nil {
			return err
		}
		if n = int(tag.RowsAffected()); n == 0 {
			return s.missing(ctx, tx, gallery)
		}
		ev.Seq, err = change(ctx, tx, OpDeleteSubject, gallery, subject, "")
		return err
	})
	if err != nil {
		return Event{}, 0, storePGErr(err)
	}
	return ev, n, nil
}

// missing says why a subject has no faces: its gallery is absent, or it is.
func (s *PostgresStore) missing(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, gallery string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM visionserve_galleries WHERE name = $1)`, gallery).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return ErrGalleryNotFound
	}
	return ErrSubjectNotFound
}

// Faces implements Store.
func (s *PostgresStore) Faces(ctx context.Context, gallery, subject string) ([]FaceInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, created FROM visionserve_faces WHERE gallery = $1 AND subject = $2 ORDER BY created, id`, gallery, subject)
	if err != nil {
		return nil, storePGErr(err)
	}
	var out []FaceInfo
	for rows.Next() {
		var fi FaceInfo
		if err := rows.Scan(&fi.ID, &fi.Created); err != nil {
			rows.Close()
			return nil, storePGErr(err)
		}
		fi.Created = fi.Created.UTC()
		out = append(out, fi)
	}
	if err := rows.Err(); err != nil {
		return nil, storePGErr(err)
	}
	if len(out) == 0 {
		return nil, storePGErr(s.missing(ctx, s.pool, gallery))
	}
	return out, nil
}

// Changes implements Feed. An add whose face was deleted since comes back
// with a nil Face; a later delete event follows it in the log.
func (s *PostgresStore) Changes(ctx context.Context, after uint64, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.seq, c.op, c.gallery, c.subject, c.face_id, f.model, f.embedding, f.created, g.created
		FROM visionserve_changes c
		LEFT JOIN visionserve_faces f ON c.op = 'add_face' AND f.id = c.face_id
		LEFT JOIN visionserve_galleries g ON c.op = 'create_gallery' AND g.name = c.gallery
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
		if err := rows.Scan(&ev.Seq, &op, &ev.Gallery, &ev.Subject, &faceID, &model, &emb, &fc, &gCreated); err != nil {
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
				v, err := decodeEmbedding(emb)
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
