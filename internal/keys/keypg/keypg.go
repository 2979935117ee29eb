// Package keypg gives a store kept in PostgreSQL a keys.Keyring: one row
// of a table that the store's own migrations create (CreateTable), shared
// by every replica on the database.
package keypg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/visionserve/visionserve/internal/keys"
)

// CreateTable is the statement that creates a keyring table; put it in
// the store's migrations.
func CreateTable(table string) string {
	return `CREATE TABLE ` + table + ` (
		id  integer PRIMARY KEY CHECK (id = 1),
		doc bytea NOT NULL)`
}

// Keyring keeps the keyring document in Table's one row.
type Keyring struct {
	Pool  *pgxpool.Pool
	Table string
}

// Interface guard: replicas share the row, and keys rotate under them.
var _ keys.SharedKeyring = Keyring{}

// Shared implements keys.SharedKeyring.
func (Keyring) Shared() {}

// Load implements keys.Keyring.
func (k Keyring) Load(ctx context.Context) ([]byte, error) {
	var doc []byte
	err := k.Pool.QueryRow(ctx, `SELECT doc FROM `+k.Table+` WHERE id = 1`).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return doc, err
}

// Save implements keys.Keyring.
func (k Keyring) Save(ctx context.Context, prev, next []byte) error {
	q, args := `UPDATE `+k.Table+` SET doc = $2 WHERE id = 1 AND doc = $1`, []any{prev, next}
	if prev == nil {
		q, args = `INSERT INTO `+k.Table+` (id, doc) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, []any{next}
	}
	tag, err := k.Pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", k.Table, err)
	}
	if tag.RowsAffected() == 0 {
		return keys.ErrConflict
	}
	return nil
}
