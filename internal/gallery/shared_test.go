package gallery

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/keys"
)

// quietFeed hides notifications, so only polling carries changes.
type quietFeed struct{ *PostgresStore }

func (quietFeed) Listen(ctx context.Context, _ func()) error {
	<-ctx.Done()
	return nil
}

// eventually polls cond until it holds. A replica follows another's
// writes within about a poll interval (notified, sooner), but a loaded
// machine can hold it for longer: no time is asserted, and the bound only
// ends a broken test. The quiet replica shows polling alone carries the
// changes, since nothing else can.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	const bound = time.Minute
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not visible within %v", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// replicas starts PostgreSQL and returns a function that opens a manager
// on it, as one more replica would; a quiet one gets no notifications and
// follows the log by polling alone.
func replicas(t *testing.T) func(quiet bool) *Manager {
	srv := pgtest.Start(t)
	return func(quiet bool) *Manager {
		s, err := OpenPostgres(context.Background(), srv.DSN, 4, keys.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var st Store = s
		if quiet {
			st = quietFeed{s}
		}
		return open(t, st, testConfig())
	}
}

// TestSharedReplicas runs two managers on one PostgreSQL database, as two
// replicas would, and checks that each sees the other's writes within a
// bounded time: with notifications, and with polling alone.
func TestSharedReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	openPG := replicas(t)
	a, b, c := openPG(false), openPG(false), openPG(true)
	rng := rand.New(rand.NewPCG(11, 12))

	if _, created, err := a.CreateGallery(ctx, Ref{Name: "shared"}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	// The writer sees its own write at once.
	if a.gallery(Ref{Name: "shared"}) == nil {
		t.Fatal("writer does not see its own gallery")
	}
	if _, created, err := b.CreateGallery(ctx, Ref{Name: "shared"}); err != nil || created {
		t.Fatalf("second replica's create: created=%v err=%v", created, err)
	}
	v := unit(rng)
	id, err := a.AddFace(ctx, Ref{Name: "shared"}, "alice", testModel, v)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Search(Ref{Name: "shared"}, testModel, v, 1, 0.99); len(got) != 1 {
		t.Fatal("writer does not find its own enroll")
	}
	found := func(m *Manager) func() bool {
		return func() bool {
			got, err := m.Search(Ref{Name: "shared"}, testModel, v, 1, 0.99)
			return err == nil && len(got) == 1 && got[0].Subject == "alice"
		}
	}
	d := eventually(t, "enroll on a, seen by b (notified)", found(b))
	t.Logf("b saw a's enroll after %v", d)
	d = eventually(t, "enroll on a, seen by c (polling only)", found(c))
	t.Logf("c (no notifications) saw it after %v", d)
	faces, err := c.Subject(ctx, Ref{Name: "shared"}, "alice")
	if err != nil || len(faces) != 1 || faces[0].ID != id {
		t.Fatalf("subject through c: %+v %v", faces, err)
	}

	// A delete through b disappears everywhere.
	if n, err := b.DeleteSubject(ctx, Ref{Name: "shared"}, "alice"); err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
	gone := func(m *Manager) func() bool { return func() bool { return !found(m)() } }
	eventually(t, "delete on b, seen by a", gone(a))
	eventually(t, "delete on b, seen by c", gone(c))
	if _, err := a.DeleteSubject(ctx, Ref{Name: "shared"}, "alice"); !errors.Is(err, ErrSubjectNotFound) {
		t.Fatalf("delete again: %v", err)
	}

	// A gallery created on one replica accepts enrolls through another
	// at once: the database, not the replica's view, decides.
	if _, _, err := c.CreateGallery(ctx, Ref{Name: "fresh"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddFace(ctx, Ref{Name: "fresh"}, "bob", testModel, unit(rng)); err != nil {
		t.Fatalf("enroll through a replica that may not have seen the gallery yet: %v", err)
	}
	if _, err := b.AddFace(ctx, Ref{Name: "missing"}, "bob", testModel, unit(rng)); !errors.Is(err, ErrGalleryNotFound) {
		t.Fatalf("enroll into a missing gallery: %v", err)
	}

	// Ordering: an add then a delete of the same subject, through
	// different replicas, ends with the subject gone everywhere.
	for i := range 5 {
		if _, err := a.AddFace(ctx, Ref{Name: "shared"}, "carol", testModel, unit(rng)); err != nil {
			t.Fatal(i, err)
		}
		if _, err := b.DeleteSubject(ctx, Ref{Name: "shared"}, "carol"); err != nil {
			t.Fatal(i, err)
		}
	}
	for _, m := range []*Manager{a, b, c} {
		eventually(t, "carol gone", func() bool {
			g := m.gallery(Ref{Name: "shared"})
			return g != nil && g.subjectFaces("carol") == 0 && m.Stats().Applied == a.Stats().Applied
		})
	}

	// A replica started now loads the same state.
	d2 := openPG(false)
	if st, want := d2.Stats(), a.Stats(); st.Faces != want.Faces || st.Galleries != want.Galleries {
		t.Fatalf("new replica %+v, writer %+v", st, want)
	}
}

// TestPrunedLogReloads: a replica whose position was pruned from the log
// reloads everything instead of missing changes.
func TestPrunedLogReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	sa, err := OpenPostgres(ctx, srv.DSN, 4, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a := open(t, sa, testConfig())
	sb, err := OpenPostgres(ctx, srv.DSN, 4, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, quietFeed{sb}, testConfig())
	// Stop b from following, write, prune everything but the newest entry.
	b.cancel()
	b.wg.Wait()
	rng := rand.New(rand.NewPCG(13, 14))
	if _, _, err := a.CreateGallery(ctx, Ref{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.AddFace(ctx, Ref{Name: "g"}, "x", testModel, unit(rng)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sa.Prune(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Faces != 3 || st.Galleries != 1 || st.Applied != a.Stats().Applied {
		t.Fatalf("after reload: %+v (writer %+v)", st, a.Stats())
	}
}
