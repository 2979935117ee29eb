package connlimit_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/connlimit"
)

// With two connections open, a third is closed on arrival and counted;
// once one of the two closes, a new one is served.
func TestListenBoundsOpenConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := connlimit.NewMetrics(prometheus.NewRegistry())
	ln := connlimit.Listen(raw, 2, "http", m)
	defer ln.Close()
	served := make(chan net.Conn, 10)
	go greet(ln, func(c net.Conn) { served <- c })
	dial := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // bounds a broken test only
		b, _ := io.ReadAll(io.LimitReader(c, 6))
		return c, string(b)
	}
	a, got := dial()
	if got != "hello\n" {
		t.Fatalf("first: %q", got)
	}
	b, _ := dial()
	first := <-served
	<-served
	c, got := dial()
	if got != "" {
		t.Fatalf("the third connection was served: %q", got)
	}
	c.Close()
	if n := testutil.ToFloat64(m.Refused.WithLabelValues("http")); n != 1 {
		t.Errorf("refused %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.Open.WithLabelValues("http")); n != 2 {
		t.Errorf("open %v, want 2", n)
	}
	first.Close()
	first.Close() // a second close gives no second slot back
	a.Close()
	d, got := dial()
	defer d.Close()
	if !strings.HasPrefix(got, "hello") {
		t.Fatalf("after a close, a new connection: %q", got)
	}
	e, got := dial()
	defer e.Close()
	if got != "" {
		t.Fatalf("a double close freed two slots: %q", got)
	}
	b.Close()
}

// greet accepts connections until ln closes, says hello on each and hands
// it to then.
func greet(ln net.Listener, then func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("hello\n"))
		then(c)
	}
}

// closeHook is a listener whose connections run after, once closed, the
// test's hook: the moment a client sees its connection end and the server
// has not yet returned from Close.
type closeHook struct {
	net.Listener
	after func()
}

func (l closeHook) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return hookedConn{c, l.after}, nil
}

type hookedConn struct {
	net.Conn
	after func()
}

func (c hookedConn) Close() error {
	err := c.Conn.Close()
	c.after()
	return err
}

// At the bound, a client that has seen the server close its connection
// is served when it connects again, and the connection is no longer
// counted open: the slot is given back before the close, not after.
func TestListenFreesTheSlotBeforeTheClientSeesTheClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	m := connlimit.NewMetrics(prometheus.NewRegistry())
	ln := connlimit.Listen(closeHook{raw, func() { <-release }}, 1, "http", m)
	defer ln.Close()
	go greet(ln, func(c net.Conn) { go c.Close() }) // the server ends each connection after its greeting
	dial := func() string {
		t.Helper()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // bounds a broken test only
		b, _ := io.ReadAll(c)                               // to the server's close
		return string(b)
	}
	defer close(release)
	if got := dial(); got != "hello\n" {
		t.Fatalf("first: %q", got)
	}
	if n := testutil.ToFloat64(m.Open.WithLabelValues("http")); n != 0 {
		t.Errorf("open %v after the client saw its connection closed, want 0", n)
	}
	if got := dial(); got != "hello\n" {
		t.Fatalf("a connection after the first was closed: %q (refused: %v)", got, testutil.ToFloat64(m.Refused.WithLabelValues("http")))
	}
}
