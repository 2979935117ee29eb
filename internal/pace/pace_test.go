package pace_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/pace"
)

// serve starts a server whose handler reads the body through pace.New
// and answers what the read ended with.
func serve(t *testing.T, rate int64, grace, until time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var deadline time.Time
		if until > 0 {
			deadline = time.Now().Add(until)
		}
		b := pace.New(r.Body, http.NewResponseController(w), rate, grace, deadline)
		n, err := io.Copy(io.Discard, b)
		var pe *pace.Error
		switch {
		case errors.As(err, &pe):
			fmt.Fprintf(w, "slow %d %v after %d", pe.Rate, errors.Is(err, os.ErrDeadlineExceeded), n)
		case errors.Is(err, os.ErrDeadlineExceeded):
			fmt.Fprintf(w, "deadline after %d", n)
		case err != nil:
			fmt.Fprintf(w, "error %v", err)
		default:
			b.Done()
			fmt.Fprintf(w, "read %d", n)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// send writes a request whose body is the parts, sleeping gap between
// them, and returns the answer's body.
func send(t *testing.T, addr string, gap time.Duration, parts ...string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	total := len(strings.Join(parts, ""))
	// The head and the first part in one write: no pause the test did not
	// ask for (a loaded machine descheduling the client) comes between
	// them, to be read as a stall.
	head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", total)
	for i, p := range parts {
		if i > 0 {
			time.Sleep(gap)
		} else {
			p = head + p
		}
		if _, err := io.WriteString(conn, p); err != nil {
			break // the server gave up and closed
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBody(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		rate  int64
		grace time.Duration
		until time.Duration
		gap   time.Duration
		parts []string
		want  string
	}{
		{"fast enough", 1000, time.Second, 0, 0, []string{"hello", "world"}, "read 10"},
		// 5 bytes, then a stall: the pace gives 5 bytes 5 ms past the
		// grace, the client waits two seconds.
		{"stalls after the grace", 1000, 100 * time.Millisecond, 0, 2 * time.Second, []string{"hello", "world"}, "slow 1000 true after 5"},
		{"stalls before sending", 1000, 100 * time.Millisecond, 0, 2 * time.Second, []string{"", "hello"}, "slow 1000 true after 0"},
		// The request's deadline comes before the pace's: the read ends
		// at the deadline, and it is not called slow.
		{"request deadline first", 1, 10 * time.Second, 100 * time.Millisecond, 2 * time.Second, []string{"hello", "world"}, "deadline after 5"},
		{"no rate, no deadline", 0, 0, 0, 50 * time.Millisecond, []string{"hello", "world"}, "read 10"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := serve(t, c.rate, c.grace, c.until)
			if got := send(t, addr, c.gap, c.parts...); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// Without deadline support (a ResponseRecorder) the body is read as it
// is.
func TestBodyWithoutDeadlines(t *testing.T) {
	rec := httptest.NewRecorder()
	b := pace.New(strings.NewReader("hello"), http.NewResponseController(rec), 1, 0, time.Time{})
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
	b.Done()
}
