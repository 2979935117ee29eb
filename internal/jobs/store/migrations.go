package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/visionserve/visionserve/internal/keys/keypg"
)

// migrations are the PostgreSQL schema's versions: migrations[i] takes a
// database from version i to i+1. Append, never edit: a database records
// the version it has, and only the later ones are applied to it.
var migrations = [][]string{
	// 1: jobs, their tasks (the work still to do, leased to workers),
	// inputs, pages, the tenants' claim order and the webhook outbox.
	{
		`CREATE TABLE visionserve_jobs (
			id              text PRIMARY KEY,
			owner           text NOT NULL,
			tenant          text NOT NULL,
			state           text NOT NULL,
			tasks           integer NOT NULL,
			pages_total     integer NOT NULL,
			pages_done      integer NOT NULL,
			pages_failed    integer NOT NULL,
			input_bytes     bigint NOT NULL,
			idempotency_key text,
			fingerprint     text NOT NULL,
			webhook_url     text NOT NULL,
			created         timestamptz NOT NULL,
			updated         timestamptz NOT NULL,
			finished        timestamptz,
			expires         timestamptz,
			plan            bytea)`,
		`CREATE UNIQUE INDEX visionserve_jobs_idempotency ON visionserve_jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL`,
		`CREATE INDEX visionserve_jobs_unfinished ON visionserve_jobs (tenant) WHERE state IN ('queued', 'running')`,
		`CREATE INDEX visionserve_jobs_expires ON visionserve_jobs (expires) WHERE expires IS NOT NULL`,
		// Inputs are written before their job's row (see Create): the
		// reference is checked at commit.
		`CREATE TABLE visionserve_job_inputs (
			job_id text NOT NULL REFERENCES visionserve_jobs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
			item   integer NOT NULL,
			data   bytea NOT NULL,
			PRIMARY KEY (job_id, item))`,
		`CREATE TABLE visionserve_job_tasks (
			job_id      text NOT NULL REFERENCES visionserve_jobs (id) ON DELETE CASCADE,
			idx         integer NOT NULL,
			tenant      text NOT NULL,
			created     timestamptz NOT NULL,
			lease_owner text,
			lease_token text UNIQUE,
			lease_until timestamptz,
			PRIMARY KEY (job_id, idx))`,
		`CREATE INDEX visionserve_job_tasks_order ON visionserve_job_tasks (tenant, created, job_id, idx)`,
		`CREATE TABLE visionserve_job_pages (
			job_id text NOT NULL REFERENCES visionserve_jobs (id) ON DELETE CASCADE,
			idx    integer NOT NULL,
			data   bytea NOT NULL,
			PRIMARY KEY (job_id, idx))`,
		`CREATE TABLE visionserve_job_tenants (
			tenant text PRIMARY KEY,
			served bigint NOT NULL DEFAULT 0)`,
		`CREATE SEQUENCE visionserve_job_served`,
		// A delivery outlives its job (it carries its own body).
		`CREATE TABLE visionserve_job_webhooks (
			id          text PRIMARY KEY,
			job_id      text NOT NULL,
			url         text NOT NULL,
			destination text NOT NULL,
			body        bytea NOT NULL,
			attempts    integer NOT NULL,
			next_at     timestamptz NOT NULL,
			created     timestamptz NOT NULL,
			lease_owner text,
			lease_token text,
			lease_until timestamptz)`,
		`CREATE INDEX visionserve_job_webhooks_next ON visionserve_job_webhooks (next_at)`,
	},
	// 2: the keyring of the data keys that seal inputs and pages at rest
	// (package keys); a row only once encryption is on.
	{keypg.CreateTable(keyringTable)},
	// 3: which final jobs still have their inputs (jobs.keep_inputs), in
	// the order they are evicted when the kept bytes pass their bound.
	{
		`ALTER TABLE visionserve_jobs ADD COLUMN inputs_kept boolean NOT NULL DEFAULT false`,
		`UPDATE visionserve_jobs j SET inputs_kept = true WHERE state IN ('succeeded', 'failed', 'canceled')
			AND EXISTS (SELECT 1 FROM visionserve_job_inputs i WHERE i.job_id = j.id)`,
		`CREATE INDEX visionserve_jobs_kept ON visionserve_jobs (finished, id) WHERE inputs_kept`,
		`CREATE INDEX visionserve_jobs_kept_tenant ON visionserve_jobs (tenant, finished, id) WHERE inputs_kept`,
	},
}

// keyringTable holds the store's keyring.
const keyringTable = "visionserve_jobs_keyring"

// SchemaVersion is the schema version this code writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the migrations the database lacks, in one transaction
// under an advisory lock: replicas starting together wait for the first,
// then find nothing to do. A database newer than this code is refused
// rather than used with a schema it does not know.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('visionserve_jobs_schema'))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS visionserve_jobs_schema (
			id      integer PRIMARY KEY CHECK (id = 1),
			version integer NOT NULL)`); err != nil {
			return err
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM visionserve_jobs_schema WHERE id = 1`).Scan(&version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if version > len(migrations) {
			return fmt.Errorf("the database has job schema version %d, newer than this visionserve's %d", version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			for _, stmt := range migrations[v] {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", v+1, err)
				}
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO visionserve_jobs_schema (id, version) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET version = excluded.version`, len(migrations))
		return err
	})
}
