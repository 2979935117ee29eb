package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/tlsconf"
	"github.com/visionserve/visionserve/internal/tlsconf/tlstest"
)

// serve runs an HTTPS server with r's configuration; the handler answers
// with the client certificate's common name, or "anonymous".
func serve(t *testing.T, r *tlsconf.Reloader) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: r.TLSConfig(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			who := "anonymous"
			if len(req.TLS.PeerCertificates) > 0 {
				who = req.TLS.PeerCertificates[0].Subject.CommonName
			}
			io.WriteString(w, who)
		}),
		ErrorLog: nil,
	}
	srv.ErrorLog = discardLog()
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// client makes one request on a fresh connection. It sends its
// certificate even when the server names other CAs as acceptable (Go's
// default is to send none then), so refusals are the server's.
func client(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	c := &tls.Config{RootCAs: roots}
	if len(certs) > 0 {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   c,
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}, Timeout: 10 * time.Second}
}

func get(c *http.Client, url string) (string, *http.Response, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp, err
}

type setup struct {
	dir               string
	ca                *tlstest.CA
	certFile, keyFile string
}

func newSetup(t *testing.T) *setup {
	s := &setup{dir: t.TempDir(), ca: tlstest.NewCA(t, "test CA")}
	s.certFile, s.keyFile = s.ca.Server(t, "first").Write(t, s.dir, "server")
	return s
}

func TestTLS13AndHTTP2(t *testing.T) {
	s := newSetup(t)
	r, err := tlsconf.New(tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile}, tlsconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, r)
	body, resp, err := get(client(s.ca.Pool()), url)
	if err != nil {
		t.Fatal(err)
	}
	if body != "anonymous" || resp.ProtoMajor != 2 || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("body %q proto %s tls %x", body, resp.Proto, resp.TLS.Version)
	}
	// A client that cannot speak TLS 1.3 is refused.
	old := client(s.ca.Pool())
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
	if _, _, err := get(old, url); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.2 client: %v, want a protocol version error", err)
	}
	// HTTP/1.1 clients are still served.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool()}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	if _, resp, err := get(h1, url); err != nil || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 client: %v", err)
	}
}

func TestReloadOnHandshake(t *testing.T) {
	s := newSetup(t)
	reg := prometheus.NewRegistry()
	m := tlsconf.NewMetrics(reg)
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	r, err := tlsconf.New(tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile}, tlsconf.Options{Metrics: m, CheckInterval: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, r)
	served := func() string {
		t.Helper()
		c := &tls.Config{RootCAs: s.ca.Pool(), InsecureSkipVerify: false}
		conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), c)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("served %q", got)
	}

	// Rotate: the first handshake of the next check interval picks it up,
	// not any handshake before.
	s.ca.Server(t, "second").Write(t, s.dir, "server")
	if got := served(); got != "first" {
		t.Fatalf("within the check interval, served %q; the files must not be read at every handshake", got)
	}
	now.Add(int64(time.Minute))
	if got := served(); got != "second" {
		t.Fatalf("after rotation, served %q", got)
	}
	if v := testutil.ToFloat64(m.Reloads.WithLabelValues("success")); v != 1 {
		t.Errorf("success reloads %v", v)
	}

	// A broken rotation (key from another certificate, then garbage) keeps
	// the last good certificate and says so in the metrics.
	other := s.ca.Server(t, "third")
	tlstest.WriteFile(t, s.keyFile, other.KeyPEM)
	now.Add(int64(time.Minute))
	if got := served(); got != "second" {
		t.Fatalf("mismatched key: served %q", got)
	}
	if testutil.ToFloat64(m.ReloadSuccess) != 0 || testutil.ToFloat64(m.Reloads.WithLabelValues("failure")) != 1 {
		t.Errorf("failure not reported")
	}
	tlstest.WriteFile(t, s.certFile, []byte("garbage"))
	if _, err := r.Reload(); err == nil {
		t.Fatal("Reload of garbage succeeded")
	}
	// Completing the rotation recovers.
	tlstest.WriteFile(t, s.certFile, other.CertPEM)
	if ok, err := r.Reload(); err != nil || !ok {
		t.Fatalf("Reload: %v %v", ok, err)
	}
	if got := served(); got != "third" || testutil.ToFloat64(m.ReloadSuccess) != 1 {
		t.Fatalf("after recovery: served %q", got)
	}
	if r.Leaf().Subject.CommonName != "third" {
		t.Errorf("Leaf %v", r.Leaf().Subject)
	}
}

func TestMutualTLS(t *testing.T) {
	s := newSetup(t)
	clientCA := tlstest.NewCA(t, "client CA")
	otherCA := tlstest.NewCA(t, "stranger CA")
	caFile := filepath.Join(s.dir, "clients.pem")
	tlstest.WriteFile(t, caFile, clientCA.PEM)
	good := clientCA.Client(t, "alice").TLS
	stranger := otherCA.Client(t, "mallory").TLS

	for _, tc := range []struct {
		mode     tlsconf.ClientAuth
		certs    []tls.Certificate
		wantBody string // "" = refused
	}{
		{"", []tls.Certificate{good}, "alice"},
		{"", nil, ""},
		{"", []tls.Certificate{stranger}, ""},
		{tlsconf.ClientAuthRequire, []tls.Certificate{good}, "alice"},
		{tlsconf.ClientAuthRequire, nil, ""},
		{tlsconf.ClientAuthVerifyIfGiven, nil, "anonymous"},
		{tlsconf.ClientAuthVerifyIfGiven, []tls.Certificate{good}, "alice"},
		{tlsconf.ClientAuthVerifyIfGiven, []tls.Certificate{stranger}, ""},
	} {
		name := string(tc.mode) + "/"
		if len(tc.certs) == 0 {
			name += "no cert"
		} else {
			name += tc.certs[0].Leaf.Subject.CommonName
		}
		t.Run(name, func(t *testing.T) {
			r, err := tlsconf.New(tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile, ClientCAFile: caFile, ClientAuth: tc.mode}, tlsconf.Options{})
			if err != nil {
				t.Fatal(err)
			}
			body, _, err := get(client(s.ca.Pool(), tc.certs...), serve(t, r))
			switch {
			case tc.wantBody == "" && err == nil:
				t.Fatalf("accepted, answered %q", body)
			case tc.wantBody != "" && (err != nil || body != tc.wantBody):
				t.Fatalf("got %q, %v; want %q", body, err, tc.wantBody)
			}
		})
	}

	// The client CA file is reloaded too: a new CA's clients get in.
	r, err := tlsconf.New(tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile, ClientCAFile: caFile}, tlsconf.Options{CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, r)
	if _, _, err := get(client(s.ca.Pool(), stranger), url); err == nil {
		t.Fatal("stranger accepted before the CA rotation")
	}
	tlstest.WriteFile(t, caFile, append(append([]byte{}, clientCA.PEM...), otherCA.PEM...))
	if body, _, err := get(client(s.ca.Pool(), stranger), url); err != nil || body != "mallory" {
		t.Fatalf("after adding the CA: %q %v", body, err)
	}
}

func TestConfigErrors(t *testing.T) {
	s := newSetup(t)
	for _, tc := range []struct {
		name string
		cfg  tlsconf.Config
	}{
		{"cert without key", tlsconf.Config{CertFile: s.certFile}},
		{"key without cert", tlsconf.Config{KeyFile: s.keyFile}},
		{"missing file", tlsconf.Config{CertFile: s.certFile + ".nope", KeyFile: s.keyFile}},
		{"key of another cert", tlsconf.Config{CertFile: s.certFile, KeyFile: func() string {
			_, k := s.ca.Server(t, "x").Write(t, s.dir, "other")
			return k
		}()}},
		{"CA file without certs", tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile, ClientCAFile: s.keyFile}},
		{"bad client_auth", tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile, ClientCAFile: s.certFile, ClientAuth: "maybe"}},
		{"client_auth without CA", tlsconf.Config{CertFile: s.certFile, KeyFile: s.keyFile, ClientAuth: tlsconf.ClientAuthRequire}},
		{"CA without cert", tlsconf.Config{ClientCAFile: s.certFile}},
		{"nothing", tlsconf.Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tlsconf.New(tc.cfg, tlsconf.Options{}); !errors.Is(err, tlsconf.ErrConfig) {
				t.Fatalf("err %v, want ErrConfig", err)
			}
		})
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
