// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in
// a temporary directory, pg_ctl start on 127.0.0.1 and a free port, and an
// immediate stop plus removal when the test ends. Nothing outlives the
// test, and nothing touches the machine's own clusters.
//
// The binaries come from $VISIONSERVE_PG_BIN, else `pg_config --bindir`,
// else the newest /usr/lib/postgresql/*/bin (Debian's layout). Without them
// a test is skipped, or failed under CI=true (hack/setup-postgres.sh
// installs them). PostgreSQL refuses to run as root; as root the server
// runs as the "postgres" user the Debian package creates.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/testenv"
)

// BinEnv names the environment variable holding the PostgreSQL bin directory.
const BinEnv = "VISIONSERVE_PG_BIN"

// Server is a running test server.
type Server struct {
	// DSN connects as the superuser "visionserve" to database "postgres".
	DSN  string
	dir  string
	bin  string
	cred *syscall.Credential
}

// Start runs a server for the test and returns it; it is stopped and its
// files removed by t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, freePort)
}

// start is Start with the port picker as a seam for its own test.
func start(t testing.TB, pick func() (int, error)) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Missing(t, "running as root and there is no postgres user to run PostgreSQL as: "+err.Error())
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user. A short path keeps the socket path legal.
	s.dir, err = os.MkdirTemp("", "vspg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.dir) })
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(s.dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "visionserve", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port, err := s.listen(data, pick)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t) })
	s.DSN = fmt.Sprintf("postgres://visionserve@127.0.0.1:%d/postgres?sslmode=disable", port)
	return s
}

// bindAttempts bounds how often listen tries another port.
const bindAttempts = 5

// listen starts the server in data on a port from pick and returns the
// port. A port that was free when picked can be taken before the server
// binds it (another test's server or listener, or a connection's local
// port, in the same range); the server then fails with "Address already
// in use" and listen picks another.
func (s *Server) listen(data string, pick func() (int, error)) (int, error) {
	logPath := filepath.Join(s.dir, "log")
	for attempt := 1; ; attempt++ {
		port, err := pick()
		if err != nil {
			return 0, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50", port, s.dir)
		out, err := s.run("pg_ctl", "-D", data, "-o", opts, "-l", logPath, "-w", "-t", "60", "start")
		if err == nil {
			return port, nil
		}
		log, _ := os.ReadFile(logPath)
		if !bytes.Contains(log, []byte("Address already in use")) || attempt == bindAttempts {
			return 0, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
		_ = os.Remove(logPath) // the next attempt's log alone decides
	}
}

// Stop stops the server at once (idempotent).
func (s *Server) Stop(t testing.TB) {
	data := filepath.Join(s.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
		return
	}
	if out, err := s.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
		t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return out.Bytes(), fmt.Errorf("%s timed out", name)
	}
}

// BinDir finds the directory holding initdb and pg_ctl.
func BinDir() (string, error) {
	has := func(dir string) bool {
		st, err := os.Stat(filepath.Join(dir, "initdb"))
		return err == nil && !st.IsDir()
	}
	if d := os.Getenv(BinEnv); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("$%s=%s holds no initdb", BinEnv, d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found: install the Debian package postgresql (hack/setup-postgres.sh) or set $%s", BinEnv)
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// CreateDatabase creates a database of that name and returns its DSN.
func (s *Server) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if out, err := s.client("psql", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE "+name, s.DSN); err != nil {
		t.Fatalf("create database %s: %v\n%s", name, err, out)
	}
	i := strings.LastIndexByte(s.DSN, '/')
	q := strings.IndexByte(s.DSN, '?')
	return s.DSN[:i+1] + name + s.DSN[q:]
}

// RawFiles returns the contents of every file of the server's data
// directory (tables, indexes and, with wal, the write-ahead log) after a
// checkpoint has written what the server held in memory: the bytes a
// thief of the disk would read.
func (s *Server) RawFiles(t testing.TB, wal bool) [][]byte {
	t.Helper()
	if out, err := s.client("psql", "-v", "ON_ERROR_STOP=1", "-c", "CHECKPOINT", s.DSN); err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, out)
	}
	var files [][]byte
	err := filepath.WalkDir(filepath.Join(s.dir, "data"), func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "pg_wal" && !wal {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Dump returns pg_dump's plain-text dump of the database dsn names.
func (s *Server) Dump(t testing.TB, dsn string) []byte {
	t.Helper()
	out, err := s.client("pg_dump", "--no-owner", dsn)
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	return out
}

// client runs a client program (psql, pg_dump) as this process's user.
func (s *Server) client(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGCONNECT_TIMEOUT=30")
	return cmd.CombinedOutput()
}
