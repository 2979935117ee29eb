// Package apptest starts a real visionserve server in-process for tests:
// real Tesseract engines, a real listener on 127.0.0.1:0, a fresh metrics
// registry, stopped with the test.
package apptest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/modelcheck"
	"github.com/visionserve/visionserve/internal/testenv"
)

// checkChildEnv makes a test binary a model check child (Main).
const checkChildEnv = "VISIONSERVE_APPTEST_CHECK_CHILD"

// checkCommand starts this test binary as a check child; set by Main.
var checkCommand *modelcheck.Command

// Main is the TestMain of packages whose tests start servers. When a
// server of the tests starts this test binary as a model check child, it
// runs the child and exits; otherwise it runs the tests, and their servers
// check every repository version in a child process of this binary, as a
// visionserve server does in one of its own. Without it, test servers
// load versions with no isolated check.
func Main(m *testing.M) {
	if os.Getenv(checkChildEnv) == "1" {
		os.Exit(app.CheckChild(context.Background(), os.Stdin, os.NewFile(3, "report"), nil))
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apptest:", err)
		os.Exit(2)
	}
	// -test.run=^$ keeps the binary from running tests should the
	// variable ever be lost.
	checkCommand = &modelcheck.Command{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{checkChildEnv + "=1"}}
	os.Exit(m.Run())
}

// Server is a running test server.
type Server struct {
	*app.App
	URL      string // http://127.0.0.1:port (https:// with TLS)
	AdminURL string // the admin listener
	GRPCAddr string // 127.0.0.1:port of the gRPC server, "" when it is off
	// AdminKey is an API key with the models:admin scope, for the admin
	// listener's routes, which need a credential even with
	// authentication off (send it as Authorization: Bearer). Empty when
	// mutate replaced the auth section.
	AdminKey string
	Registry *prometheus.Registry
	stopped  bool
}

// Start runs a server with the default configuration changed by mutate
// (which may be nil). Every listener takes a free loopback port, and
// authentication is off unless mutate configures it (set
// Auth.Disabled = false); Server.AdminKey opens the admin routes. It
// skips the test (fails under CI) when Tesseract is not installed.
func Start(t testing.TB, mutate func(*config.Config)) *Server {
	t.Helper()
	s, err := TryStart(t, mutate)
	if err != nil {
		testenv.Missing(t, "cannot start visionserve (is Tesseract installed? run hack/setup.sh): "+err.Error())
	}
	return s
}

// TryStart is Start for tests whose point is whether the server starts:
// it returns the error of a server that does not, rather than skipping.
func TryStart(t testing.TB, mutate func(*config.Config)) (*Server, error) {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.GRPCAddr = "127.0.0.1:0"
	cfg.Server.AdminAddr = "127.0.0.1:0"
	cfg.Auth.Disabled = true
	adminKey, adminHash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth.APIKeys = []auth.APIKey{{Name: "apptest-admin", Hash: adminHash, Scopes: []string{string(auth.ScopeModelsAdmin)}}}
	if mutate != nil {
		mutate(&cfg)
	}
	if !slices.ContainsFunc(cfg.Auth.APIKeys, func(k auth.APIKey) bool { return k.Hash == adminHash }) {
		adminKey = ""
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("VISIONSERVE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.New(app.Options{Config: cfg, Logger: log, Registry: reg, ModelCheck: checkCommand})
	if err != nil {
		return nil, err
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	scheme := "http://"
	if a.TLS() != nil {
		scheme = "https://"
	}
	s := &Server{App: a, URL: scheme + a.Addr(), AdminURL: scheme + a.AdminAddr(), GRPCAddr: a.GRPCAddr(), AdminKey: adminKey, Registry: reg}
	t.Cleanup(func() { s.Stop(t) })
	return s, nil
}

// Stop shuts the server down (idempotent).
func (s *Server) Stop(t testing.TB) {
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
