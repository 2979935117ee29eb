package store_test

import (
	"testing"

	"github.com/visionserve/visionserve/internal/jobs/store"
)

// A restarted embedded store finds the inputs kept for final jobs, and
// bounds them from the first end: a bound lowered meanwhile evicts the
// oldest down to it.
func TestBoltKeptAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenBolt(dir, defaults(store.Options{KeepInputs: true}))
	if err != nil {
		t.Fatal(err)
	}
	ids := finishJobs(t, s, 3, 0)
	s.Close()
	if s, err = store.OpenBolt(dir, defaults(store.Options{KeepInputs: true, MaxKeptBytes: 20})); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantKeptEvicted(t, s, ids)
}
