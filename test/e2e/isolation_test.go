package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine/tesseract/tesstest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Issue 11, item 1, with the real binary: a signed version whose
// eng.traineddata aborts libtesseract is refused by `visionserve model
// check` and, in the server, by the check child (`visionserve model check
// --child`, the same binary); the server serves version 1. Restarted with
// the bad version still the newest on disk, it comes up serving version 1
// again and does not check the bad one again: it remembers why it failed.
func TestE2ECorruptNewestVersionAcrossRestarts(t *testing.T) {
	line := filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png")
	home := t.TempDir()
	if out, errOut, code := runCLI(t, "model", "bootstrap", "--home", home); code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s%s", code, out, errOut)
	}
	models, pub, priv := filepath.Join(home, "models"), filepath.Join(home, "keys", "public.pem"), filepath.Join(home, "keys", "private.pem")
	v1, staging := filepath.Join(models, "ocr-eng", "1"), filepath.Join(models, "ocr-eng", ".incoming-2")
	if err := exec.Command("cp", "-R", v1, staging).Run(); err != nil {
		t.Fatal(err)
	}
	eng, err := os.ReadFile(filepath.Join(v1, "eng.traineddata"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := tesstest.Corrupt(eng, tesstest.TruncatedLSTM)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "eng.traineddata"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"model", "pack", "--name", "ocr-eng", "--version", "2", "--kind", "ocr-tesseract", "--runtime", `{"lang":"eng"}`, staging},
		{"model", "sign", "--key", priv, staging},
		{"model", "verify", "--key", pub, staging},
	} {
		if out, errOut, code := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	// The signature is good; the model is not.
	out, errOut, code := runCLI(t, "model", "check", "--key", pub, staging)
	if code != 1 || !strings.HasPrefix(errOut, "visionserve model check: load_error: isolated check: the check process died of SIGABRT") {
		t.Fatalf("model check of the corrupt package: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := runCLI(t, "model", "check", "--key", pub, v1); code != 0 || !strings.Contains(out, "checked ocr-eng version 1") {
		t.Fatalf("model check of version 1: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.Rename(staging, filepath.Join(models, "ocr-eng", "2")); err != nil {
		t.Fatal(err)
	}

	version := func(s *server) string {
		resp, err := http.Post(s.url+"/v1/ocr", "image/png", mustOpen(t, line))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ocr: status %d\n%s", resp.StatusCode, s.logs.String())
		}
		return resp.Header.Get("X-Model-Version")
	}
	stop := func(s *server) {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(time.Minute):
			t.Fatalf("the server did not stop:\n%s", s.logs.String())
		}
	}
	for run := range 2 {
		s := startServer(t, "--models", models, "--trust-key", pub)
		if v := version(s); v != "1" {
			t.Fatalf("run %d: served by version %q\n%s", run, v, s.logs.String())
		}
		logs := s.logs.String()
		checked := strings.Contains(logs, `msg="isolated model check refused the version" component=modelcheck model=ocr-eng version=2`)
		remembered := strings.Contains(logs, "remembered from")
		if run == 0 && (!checked || remembered) || run == 1 && (checked || !remembered) {
			t.Fatalf("run %d: version 2 checked=%v remembered=%v\n%s", run, checked, remembered, logs)
		}
		stop(s)
	}
}
