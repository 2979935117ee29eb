package pgtest

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A port picked free can be taken before PostgreSQL binds it (CI runs
// several packages' servers and clients at once): the server then starts
// on another port instead of failing the test.
func TestStartRetriesAPortTakenMeanwhile(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	s := start(t, func() (int, error) {
		picks++
		if picks == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return freePort()
	})
	if picks != 2 {
		t.Errorf("%d ports picked, want 2", picks)
	}
	conn, err := pgx.Connect(context.Background(), s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d %v", one, err)
	}
}
