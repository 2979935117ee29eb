package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keypg"
)

// Postgres keeps jobs in PostgreSQL, shared by every replica that points
// at the same database: any replica answers for any job and runs any
// task. Leases are rows (lease_owner, lease_token, lease_until) claimed
// with SELECT ... FOR UPDATE SKIP LOCKED, so claimers never wait for each
// other and a task runs on one replica at a time; a lease that is not
// renewed (its replica died) expires and the task is claimed again.
//
// Times come from the callers (each replica's clock): keep the replicas'
// clocks synchronised (NTP) well within the lease time.
type Postgres struct {
	pool *pgxpool.Pool
	opts Options
	keys *keys.Ring // nil when Options.Codec replaced it
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database named by dsn (a postgres:// URL
// or keyword/value string; PGPASSWORD and .pgpass apply) with at most
// maxConns connections (0: pgx's default), and applies the migrations
// this version has that the database lacks.
func OpenPostgres(ctx context.Context, dsn string, maxConns int, opts Options) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("job store: postgres connection string: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("job store: %w", pgErr(err))
	}
	s := &Postgres{pool: pool, opts: opts.withDefaults()}
	if s.keys, err = s.opts.openKeys(ctx, keypg.Keyring{Pool: pool, Table: keyringTable}, s); err != nil {
		pool.Close()
		return nil, fmt.Errorf("job store: %w", pgErr(err))
	}
	return s, nil
}

// Keys returns the ring that seals the store's payloads.
func (s *Postgres) Keys() *keys.Ring { return s.keys }

// Reseal implements keys.Records: the inputs, then the pages, one row at
// a time (an input may be large), each rewritten only if unchanged.
func (s *Postgres) Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error {
	for _, t := range []struct {
		table, col string
		ref        func(string, int) string
	}{{"visionserve_job_inputs", "item", inputRef}, {"visionserve_job_pages", "idx", pageRef}} {
		after, afterN := "", -1
		for {
			rows, err := s.pool.Query(ctx, `SELECT job_id, `+t.col+` FROM `+t.table+`
				WHERE (job_id, `+t.col+`) > ($1, $2) ORDER BY job_id, `+t.col+` LIMIT 256`, after, afterN)
			if err != nil {
				return pgErr(err)
			}
			type key struct {
				id string
				n  int
			}
			batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
				var k key
				err := r.Scan(&k.id, &k.n)
				return k, err
			})
			if err != nil {
				return pgErr(err)
			}
			for _, k := range batch {
				after, afterN = k.id, k.n
				var old []byte
				err := s.pool.QueryRow(ctx, `SELECT data FROM `+t.table+` WHERE job_id = $1 AND `+t.col+` = $2`, k.id, k.n).Scan(&old)
				if errors.Is(err, pgx.ErrNoRows) {
					continue // deleted meanwhile
				}
				if err != nil {
					return pgErr(err)
				}
				data, err := fn(t.ref(k.id, k.n), old)
				if err != nil {
					return err
				}
				if data == nil {
					continue
				}
				if _, err := s.pool.Exec(ctx, `UPDATE `+t.table+` SET data = $3 WHERE job_id = $1 AND `+t.col+` = $2 AND data = $4`, k.id, k.n, data, old); err != nil {
					return pgErr(err)
				}
			}
			if len(batch) < 256 {
				break
			}
		}
	}
	return nil
}

// Close implements Store.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}

// pgErr marks failures to reach the server (no connection, a connection
// lost, a server shutting down) as ErrUnavailable; everything else stays
// as it is.
func pgErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	unreachable := errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || (errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57")))
	if unreachable {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// tx runs fn in a transaction.
func (s *Postgres) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgErr(pgx.BeginFunc(ctx, s.pool, fn))
}

const jobColumns = `id, owner, tenant, state, tasks, pages_total, pages_done, pages_failed, input_bytes,
	coalesce(idempotency_key, ''), fingerprint, webhook_url, created, updated, finished, expires, plan`

func scanJob(row pgx.Row) (*Job, error) {
	var j Job
	var finished, expires *time.Time
	err := row.Scan(&j.ID, &j.Owner, &j.Tenant, &j.State, &j.Tasks, &j.PagesTotal, &j.PagesDone, &j.PagesFailed, &j.InputBytes,
		&j.IdempotencyKey, &j.Fingerprint, &j.WebhookURL, &j.Created, &j.Updated, &finished, &expires, &j.Plan)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if finished != nil {
		j.Finished = *finished
	}
	if expires != nil {
		j.Expires = *expires
	}
	return &j, nil
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Create implements Jobs. The inputs are written first; only then is the
// admission lock taken (limits are checked against committed jobs, so
// checks and inserts must not interleave across replicas), and it is held
// only for the checks and the small rows.
func (s *Postgres) Create(ctx context.Context, j *Job, inputs [][]byte, lim Limits) (*Job, error) {
	sealed, err := sealInputs(s.opts.Codec, j.ID, inputs)
	if err != nil {
		return nil, err
	}
	j.State = StateQueued
	var existing *Job
	err = s.tx(ctx, func(tx pgx.Tx) error {
		for i, b := range sealed {
			if _, err := tx.Exec(ctx, `INSERT INTO visionserve_job_inputs (job_id, item, data) VALUES ($1, $2, $3)`, j.ID, i, b); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_jobs_admit'))`); err != nil {
			return err
		}
		if j.IdempotencyKey != "" {
			p, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM visionserve_jobs WHERE owner = $1 AND idempotency_key = $2`, j.Owner, j.IdempotencyKey))
			if err == nil {
				existing = p
				return errRollback
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		var all, tenant Stats
		err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(input_bytes), 0),
				count(*) FILTER (WHERE tenant = $1), coalesce(sum(input_bytes) FILTER (WHERE tenant = $1), 0)
			FROM visionserve_jobs WHERE state IN ('queued', 'running')`, j.Tenant).Scan(&all.Jobs, &all.Bytes, &tenant.Jobs, &tenant.Bytes)
		if err != nil {
			return err
		}
		if err := checkLimits(lim, all, tenant, j.InputBytes); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO visionserve_jobs (id, owner, tenant, state, tasks, pages_total, pages_done, pages_failed,
				input_bytes, idempotency_key, fingerprint, webhook_url, created, updated, plan)
			VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8, $9, $10, $11, $11, $12)`,
			j.ID, j.Owner, j.Tenant, j.State, j.Tasks, j.PagesTotal, j.InputBytes, nullString(j.IdempotencyKey), j.Fingerprint, j.WebhookURL, j.Created, j.Plan)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO visionserve_job_tasks (job_id, idx, tenant, created)
			SELECT $1, g, $2, $3 FROM generate_series(0, $4 - 1) AS g`, j.ID, j.Tenant, j.Created, j.Tasks); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO visionserve_job_tenants (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING`, j.Tenant)
		return err
	})
	if errors.Is(err, errRollback) {
		return existing, nil
	}
	return nil, err
}

// errRollback ends a transaction that found its answer without writing.
var errRollback = errors.New("rollback")

// Get implements Jobs.
func (s *Postgres) Get(ctx context.Context, id string) (*Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM visionserve_jobs WHERE id = $1`, id))
	return j, pgErr(err)
}

// Idempotent implements Jobs.
func (s *Postgres) Idempotent(ctx context.Context, owner, key string) (*Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM visionserve_jobs WHERE owner = $1 AND idempotency_key = $2`, owner, key))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return j, pgErr(err)
}

// Input implements Jobs.
func (s *Postgres) Input(ctx context.Context, id string, item int) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM visionserve_job_inputs WHERE job_id = $1 AND item = $2`, id, item).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("job %s: input %d: %w", id, item, ErrNotFound)
	}
	if err != nil {
		return nil, pgErr(err)
	}
	return s.opts.Codec.Open(inputRef(id, item), data)
}

// Pages implements Jobs: keyset pages of pageBatch rows, each its own
// query, so no connection is held while the caller writes.
func (s *Postgres) Pages(ctx context.Context, id string) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		after := -1
		for {
			rows, err := s.pool.Query(ctx, `SELECT idx, data FROM visionserve_job_pages WHERE job_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`, id, after, pageBatch)
			if err != nil {
				yield(Page{}, pgErr(err))
				return
			}
			batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Page, error) {
				var p Page
				err := r.Scan(&p.Index, &p.Data)
				return p, err
			})
			if err != nil {
				yield(Page{}, pgErr(err))
				return
			}
			for _, p := range batch {
				data, err := s.opts.Codec.Open(pageRef(id, p.Index), p.Data)
				p.Data = data
				if !yield(p, err) || err != nil {
					return
				}
				after = p.Index
			}
			if len(batch) < pageBatch {
				return
			}
		}
	}
}

// lockJob reads job id and locks its row until the transaction ends.
func lockJob(ctx context.Context, tx pgx.Tx, id string) (*Job, error) {
	return scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM visionserve_jobs WHERE id = $1 FOR UPDATE`, id))
}

// end ends unfinished job j (its row locked by tx): state, inputs
// (unless keep, and then the oldest kept inputs past the bounds),
// remaining tasks, webhook. It returns the jobs whose inputs it evicted.
func (s *Postgres) end(ctx context.Context, tx pgx.Tx, j *Job, state State, now time.Time, keep bool) ([]string, error) {
	d, err := s.opts.end(j, state, now)
	if err != nil {
		return nil, err
	}
	deletes := []string{`DELETE FROM visionserve_job_tasks WHERE job_id = $1`}
	if !keep {
		deletes = append(deletes, `DELETE FROM visionserve_job_inputs WHERE job_id = $1`)
	}
	for _, q := range deletes {
		if _, err := tx.Exec(ctx, q, j.ID); err != nil {
			return nil, err
		}
	}
	if d != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO visionserve_job_webhooks (id, job_id, url, destination, body, attempts, next_at, created)
			VALUES ($1, $2, $3, $4, $5, 0, $6, $6)`, d.ID, d.JobID, d.URL, Destination(d.URL), d.Body, now); err != nil {
			return nil, err
		}
	}
	if err := updateJob(ctx, tx, j); err != nil || !keep {
		return nil, err
	}
	return s.evict(ctx, tx, j)
}

// evict marks j's inputs kept and deletes the oldest kept inputs past
// the bounds (Options.fitKept). One advisory lock serialises it across
// replicas, so that two jobs ending at once cannot both find room: each
// counts what the other committed. It locks only rows of jobs final
// before it took the lock, never an unfinished job's (whose ending
// transaction may hold that row and wait for the lock).
func (s *Postgres) evict(ctx context.Context, tx pgx.Tx, j *Job) ([]string, error) {
	if _, err := tx.Exec(ctx, `UPDATE visionserve_jobs SET inputs_kept = true WHERE id = $1`, j.ID); err != nil {
		return nil, err
	}
	if s.opts.MaxKeptBytes <= 0 && s.opts.TenantMaxKeptBytes <= 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_jobs_kept'))`); err != nil {
		return nil, err
	}
	var all, mine int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(input_bytes), 0), coalesce(sum(input_bytes) FILTER (WHERE tenant = $1), 0)
		FROM visionserve_jobs WHERE inputs_kept`, j.Tenant).Scan(&all, &mine); err != nil {
		return nil, err
	}
	if !s.opts.overKept(all, mine) {
		return nil, nil
	}
	oldest := func(tenant string) (keptInput, bool, error) {
		k := keptInput{tenant: tenant}
		var err error
		if tenant == "" {
			err = tx.QueryRow(ctx, `SELECT id, tenant, input_bytes FROM visionserve_jobs WHERE inputs_kept
				ORDER BY finished, id LIMIT 1`).Scan(&k.id, &k.tenant, &k.bytes)
		} else {
			err = tx.QueryRow(ctx, `SELECT id, input_bytes FROM visionserve_jobs WHERE inputs_kept AND tenant = $1
				ORDER BY finished, id LIMIT 1`, tenant).Scan(&k.id, &k.bytes)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return k, false, nil
		}
		return k, err == nil, err
	}
	drop := func(k keptInput) error {
		if _, err := tx.Exec(ctx, `UPDATE visionserve_jobs SET inputs_kept = false WHERE id = $1`, k.id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM visionserve_job_inputs WHERE job_id = $1`, k.id)
		return err
	}
	return s.opts.fitKept(j.Tenant, all, mine, oldest, drop)
}

// evicted reports committed evictions.
func (s *Postgres) evicted(ids []string) {
	if len(ids) > 0 {
		s.opts.Evicted(len(ids))
	}
}

// updateJob writes the fields that change after creation.
func updateJob(ctx context.Context, tx pgx.Tx, j *Job) error {
	_, err := tx.Exec(ctx, `UPDATE visionserve_jobs SET state = $2, pages_done = $3, pages_failed = $4, updated = $5, finished = $6, expires = $7
		WHERE id = $1`, j.ID, j.State, j.PagesDone, j.PagesFailed, j.Updated, nullTime(j.Finished), nullTime(j.Expires))
	return err
}

// Cancel implements Jobs.
func (s *Postgres) Cancel(ctx context.Context, id string, now time.Time) (j *Job, changed bool, err error) {
	var evicted []string
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if j, err = lockJob(ctx, tx, id); err != nil || j.State.Terminal() {
			return err
		}
		changed = true
		evicted, err = s.end(ctx, tx, j, StateCanceled, now, s.opts.KeepInputs)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	s.evicted(evicted)
	return j, changed, nil
}

// Delete implements Jobs; the job's tasks, inputs and pages go with it
// (ON DELETE CASCADE).
func (s *Postgres) Delete(ctx context.Context, id string, now time.Time) (j *Job, canceled bool, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if j, err = lockJob(ctx, tx, id); err != nil {
			return err
		}
		if !j.State.Terminal() {
			canceled = true
			if _, err := s.end(ctx, tx, j, StateCanceled, now, false); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM visionserve_jobs WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return j, canceled, nil
}

// Expire implements Jobs.
func (s *Postgres) Expire(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM visionserve_jobs WHERE expires < $1 AND state IN ('succeeded', 'failed', 'canceled')`, now)
	if err != nil {
		return 0, pgErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// Stats implements Jobs.
func (s *Postgres) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(input_bytes), 0),
			(SELECT coalesce(sum(input_bytes), 0) FROM visionserve_jobs WHERE inputs_kept)
		FROM visionserve_jobs WHERE state IN ('queued', 'running')`).Scan(&st.Jobs, &st.Bytes, &st.KeptBytes)
	return st, pgErr(err)
}

// claimTenants is how many tenants one claim considers, in order, before
// giving up (the rest wait for the next claim).
const claimTenants = 8

// Claim implements Work: first the order of tenants (fewest live leases,
// then least recently served), then, for the first tenant with a task no
// other claimer holds, its oldest job's first free task. The job's row is
// marked running after the claim commits: every transaction that locks
// both a job and its tasks locks the job first (Cancel, Complete), and a
// claim must not hold a task while waiting for its job.
func (s *Postgres) Claim(ctx context.Context, worker string, now time.Time, lease time.Duration) (*Claim, error) {
	var c *Claim
	var id string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT s.tenant FROM visionserve_job_tenants s
			WHERE EXISTS (SELECT 1 FROM visionserve_job_tasks t WHERE t.tenant = s.tenant AND (t.lease_until IS NULL OR t.lease_until <= $1))
			ORDER BY (SELECT count(*) FROM visionserve_job_tasks t WHERE t.tenant = s.tenant AND t.lease_until > $1), s.served, s.tenant
			LIMIT $2`, now, claimTenants)
		if err != nil {
			return err
		}
		tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, tenant := range tenants {
			var task int
			err := tx.QueryRow(ctx, `SELECT job_id, idx FROM visionserve_job_tasks
				WHERE tenant = $1 AND (lease_until IS NULL OR lease_until <= $2)
				ORDER BY created, job_id, idx LIMIT 1 FOR UPDATE SKIP LOCKED`, tenant, now).Scan(&id, &task)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // all taken by claimers running now
			}
			if err != nil {
				return err
			}
			c = &Claim{Task: task, Token: NewID("lease_"), Until: now.Add(lease)}
			if _, err := tx.Exec(ctx, `UPDATE visionserve_job_tasks SET lease_owner = $3, lease_token = $4, lease_until = $5
				WHERE job_id = $1 AND idx = $2`, id, task, worker, c.Token, c.Until); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE visionserve_job_tenants SET served = nextval('visionserve_job_served') WHERE tenant = $1`, tenant)
			return err
		}
		return nil
	})
	if err != nil || c == nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE visionserve_jobs SET state = 'running', updated = $2 WHERE id = $1 AND state = 'queued'`, id, now); err != nil {
		return nil, pgErr(err)
	}
	if c.Job, err = scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM visionserve_jobs WHERE id = $1`, id)); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil // deleted meanwhile: the claim went with its task row
		}
		return nil, pgErr(err)
	}
	return c, nil
}

// Renew implements Work.
func (s *Postgres) Renew(ctx context.Context, worker string, tokens []string, until time.Time) ([]string, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `UPDATE visionserve_job_tasks SET lease_until = $3
		WHERE lease_owner = $1 AND lease_token = ANY($2) RETURNING lease_token`, worker, tokens, until)
	if err != nil {
		return nil, pgErr(err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, pgErr(err)
	}
	held := map[string]bool{}
	for _, t := range kept {
		held[t] = true
	}
	var lost []string
	for _, t := range tokens {
		if !held[t] {
			lost = append(lost, t)
		}
	}
	return lost, nil
}

// Release implements Work.
func (s *Postgres) Release(ctx context.Context, tokens ...string) error {
	if len(tokens) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE visionserve_job_tasks SET lease_owner = NULL, lease_token = NULL, lease_until = NULL
		WHERE lease_token = ANY($1)`, tokens)
	return pgErr(err)
}

// Complete implements Work. The job's row is locked first, so two
// workers recording a job's last two tasks are serialised, and the
// second sees that no task is left.
func (s *Postgres) Complete(ctx context.Context, c *Claim, pages []Page, now time.Time) (*Job, error) {
	id := c.Job.ID
	sealed, failed, err := sealPages(s.opts.Codec, id, pages)
	if err != nil {
		return nil, err
	}
	var ended *Job
	var evicted []string
	err = s.tx(ctx, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil || j.State.Terminal() {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM visionserve_job_tasks WHERE job_id = $1 AND idx = $2`, id, c.Task)
		if err != nil || tag.RowsAffected() == 0 {
			return err // recorded already
		}
		for _, p := range sealed {
			if _, err := tx.Exec(ctx, `INSERT INTO visionserve_job_pages (job_id, idx, data) VALUES ($1, $2, $3)
				ON CONFLICT (job_id, idx) DO NOTHING`, id, p.Index, p.Data); err != nil {
				return err
			}
		}
		j.PagesDone += len(pages)
		j.PagesFailed += failed
		j.Updated = now
		var more bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM visionserve_job_tasks WHERE job_id = $1)`, id).Scan(&more); err != nil {
			return err
		}
		if more {
			return updateJob(ctx, tx, j)
		}
		ended = j
		evicted, err = s.end(ctx, tx, j, finalState(j), now, s.opts.KeepInputs)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.evicted(evicted)
	return ended, nil
}

const deliveryColumns = `id, job_id, url, body, attempts, next_at, created`

// ClaimDelivery implements Outbox. Claims take one advisory lock, so the
// per-destination count cannot be passed by two replicas at once.
func (s *Postgres) ClaimDelivery(ctx context.Context, worker string, now time.Time, lease time.Duration, perDestination int) (*Delivery, error) {
	var d *Delivery
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_job_webhooks_claim'))`); err != nil {
			return err
		}
		var got Delivery
		err := tx.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM visionserve_job_webhooks w
			WHERE next_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
			AND (SELECT count(*) FROM visionserve_job_webhooks b WHERE b.destination = w.destination AND b.lease_until > $1) < $2
			ORDER BY next_at, id LIMIT 1`, now, perDestination).Scan(&got.ID, &got.JobID, &got.URL, &got.Body, &got.Attempts, &got.Next, &got.Created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		got.Token = NewID("lease_")
		if _, err := tx.Exec(ctx, `UPDATE visionserve_job_webhooks SET lease_owner = $2, lease_token = $3, lease_until = $4 WHERE id = $1`,
			got.ID, worker, got.Token, now.Add(lease)); err != nil {
			return err
		}
		d = &got
		return nil
	})
	return d, err
}

// NextDelivery implements Outbox.
func (s *Postgres) NextDelivery(ctx context.Context) (time.Time, bool, error) {
	var next *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(next_at) FROM visionserve_job_webhooks`).Scan(&next); err != nil {
		return time.Time{}, false, pgErr(err)
	}
	if next == nil {
		return time.Time{}, false, nil
	}
	return *next, true, nil
}

// DeliveryDone implements Outbox.
func (s *Postgres) DeliveryDone(ctx context.Context, d *Delivery) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM visionserve_job_webhooks WHERE id = $1`, d.ID)
	return pgErr(err)
}

// DeliveryRetry implements Outbox.
func (s *Postgres) DeliveryRetry(ctx context.Context, d *Delivery) error {
	_, err := s.pool.Exec(ctx, `UPDATE visionserve_job_webhooks SET attempts = $2, next_at = $3, lease_owner = NULL, lease_token = NULL, lease_until = NULL
		WHERE id = $1`, d.ID, d.Attempts, d.Next)
	return pgErr(err)
}
