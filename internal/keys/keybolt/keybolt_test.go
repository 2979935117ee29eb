package keybolt_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/keys/keybolt"
)

// Open creates the file's directory and runs the migration; a file
// another process holds is refused after the lock timeout with a reason
// that says so; a failed migration leaves the file free to open again.
func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "store.db")
	ran := 0
	migrate := func(tx *bolt.Tx) error { ran++; _, err := tx.CreateBucketIfNotExists([]byte("meta")); return err }
	db, err := keybolt.Open(path, time.Second, migrate)
	if err != nil {
		t.Fatal(err)
	}
	if ran != 1 {
		t.Fatalf("migrate ran %d times", ran)
	}
	// bbolt's lock is a flock on the file: a second open in the same
	// process contends as another process would.
	if _, err := keybolt.Open(path, 10*time.Millisecond, migrate); err == nil || !strings.Contains(err.Error(), "another process holds it") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: %v", err)
	}
	db.Close()
	bad := errors.New("schema version \"9\"")
	if _, err := keybolt.Open(path, time.Second, func(*bolt.Tx) error { return bad }); !errors.Is(err, bad) {
		t.Fatalf("failed migration: %v", err)
	}
	db, err = keybolt.Open(path, time.Second, migrate)
	if err != nil {
		t.Fatalf("after a failed migration the file stayed held: %v", err)
	}
	db.Close()
}
