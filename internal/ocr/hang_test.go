package ocr_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// hangChildEnv makes the test binary run the hanging half of
// TestIntegrationRealTesseractHangEndsAtTheDeadline.
const hangChildEnv = "VISIONSERVE_TEST_TESSERACT_HANG"

// textord_tabfind_show_images=1 is one of Tesseract's display variables:
// the first page read in page mode opens a ScrollView window, which runs
// `sh -c "java ... ScrollView.jar"` and then waits inside the C call, for
// ever, for the viewer to connect. (Model packages can no longer set it:
// tesseract.CheckVariables.) The request must still answer at its
// deadline, and the pool must not wait for the stuck engine when it
// closes. The stuck call never returns, so the test runs in a child
// process (this test binary again), with an empty PATH so that no Java
// starts, and the parent kills it when it is done.
func TestIntegrationRealTesseractHangEndsAtTheDeadline(t *testing.T) {
	if os.Getenv(hangChildEnv) == "1" {
		hangChild(t)
		return
	}
	lines := testenv.Shared(t, "data/ocr/lines")
	if _, err := tesseract.New(tesseract.Config{Languages: "eng"}); err != nil {
		testenv.Missing(t, "tesseract unavailable (run hack/setup.sh): "+err.Error())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationRealTesseractHangEndsAtTheDeadline$", "-test.v")
	cmd.Env = append(os.Environ(), hangChildEnv+"=1", "PATH="+t.TempDir(), "VISIONSERVE_TEST_LINES="+lines)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the child hung: the request or Close waited for the stuck engine\n%s", out.String())
	}
	if !strings.Contains(out.String(), "ScrollView") {
		t.Logf("Tesseract did not mention ScrollView; the variable may not hang this build:\n%s", out.String())
	}
}

func hangChild(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(os.Getenv("VISIONSERVE_TEST_LINES"), "book/0005/010001.bin.png"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := engine.NewPool(1, func(int) (ocr.Engine, error) {
		return tesseract.New(tesseract.Config{Languages: "eng", Variables: map[string]string{"textord_tabfind_show_images": "1"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	models, _ := ocr.NewStaticModels(&ocr.Model{Ref: ocr.ModelRef{Name: "ocr-eng", Version: "1"}, Languages: "eng", Engines: pool})
	svc := ocr.NewService(ocr.DefaultConfig(), models, sched.New(1, 1, nil), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = svc.Recognize(ctx, ocr.Input{Data: data}, ocr.Options{Mode: ocr.ModePage})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recognize = %v, want the deadline", err)
	}
	if err := pool.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
