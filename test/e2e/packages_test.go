package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/testenv"
)

// The first run as the quick start does it, with the real binary: bootstrap
// packs and signs the system's English model with a new local key, serve
// loads it from the repository; a second version published by the
// documented recipe (copy to a dot-name, pack, sign, verify, rename)
// replaces it without a restart; SIGTERM ends the server even while an
// event stream is open.
func TestE2EFirstRunFromPackages(t *testing.T) {
	line := filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png")
	home := t.TempDir()
	out, errOut, code := runCLI(t, "model", "bootstrap", "--home", home)
	if code != 0 || !strings.Contains(out, "published ocr-eng version 1") {
		t.Fatalf("bootstrap: exit %d\n%s%s", code, out, errOut)
	}
	models, pub := filepath.Join(home, "models"), filepath.Join(home, "keys", "public.pem")
	// The model API is on the admin listener and always needs a
	// models:admin credential: give the server one key.
	adminKey, adminHash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "visionserve.yaml")
	cfg := fmt.Sprintf("auth:\n  api_keys:\n    - {name: e2e-admin, hash: %q, scopes: [models:admin]}\n", adminHash)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfgFile, "--models", models, "--trust-key", pub)
	m := adminAddr.FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no admin listener in the log:\n%s", s.logs.String())
	}

	version := func() string {
		resp, err := http.Post(s.url+"/v1/ocr", "image/png", mustOpen(t, line))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ocr: status %d", resp.StatusCode)
		}
		return resp.Header.Get("X-Model-Version")
	}
	if v := version(); v != "1" {
		t.Fatalf("served by version %q", v)
	}
	if resp, err := http.Get(s.url + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}

	events, stopEvents := openEvents(t, "http://"+m[1]+"/v1/models/events", adminKey)
	defer stopEvents()

	// Publish version 2 the documented way.
	v1, staging := filepath.Join(models, "ocr-eng", "1"), filepath.Join(models, "ocr-eng", ".incoming-2")
	priv := filepath.Join(home, "keys", "private.pem")
	if err := exec.Command("cp", "-R", v1, staging).Run(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"model", "pack", "--name", "ocr-eng", "--version", "2", "--kind", "ocr-tesseract", "--runtime", `{"lang": "eng"}`, staging},
		{"model", "sign", "--key", priv, staging},
		{"model", "verify", "--key", pub, staging},
	} {
		if out, errOut, code := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if err := os.Rename(staging, filepath.Join(models, "ocr-eng", "2")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(2 * time.Minute)
	for ready := false; !ready; {
		select {
		case e := <-events:
			// The traffic event follows the publication of the table
			// that routes to version 2.
			shares, _ := e["traffic"].(map[string]any)
			ready = e["type"] == "traffic" && shares["2"] == 1.0
		case <-deadline:
			t.Fatalf("version 2 never became ready:\n%s", s.logs.String())
		}
	}
	if v := version(); v != "2" {
		t.Errorf("after the swap, served by version %q", v)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit after SIGTERM with an event stream open")
	}
	if logs := s.logs.String(); strings.Contains(logs, "shutdown deadline") || !strings.Contains(logs, "msg=stopped") {
		t.Errorf("shutdown was not orderly:\n%s", logs)
	}
}

var adminAddr = regexp.MustCompile(`msg="admin listener" .*addr=(127\.0\.0\.1:\d+)`)

// openEvents follows the server's event stream.
func openEvents(t *testing.T, url, key string) (<-chan map[string]any, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: status %d", resp.StatusCode)
	}
	out := make(chan map[string]any, 256)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e map[string]any
				if json.Unmarshal([]byte(data), &e) == nil {
					out <- e
				}
			}
		}
	}()
	return out, cancel
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
