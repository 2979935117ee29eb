package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/review"
	"github.com/visionserve/visionserve/internal/testenv"
)

// A server configured for encryption seals a job's input and result (the
// job database holds neither the image nor the recognised text), opens
// the review store with its KEK, serves the result after a restart, and
// refuses to start with another KEK, a missing one, or none, saying
// which.
func TestIntegrationEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	line := testenv.Shared(t, "data/ocr/lines/book/0005/010001.bin.png")
	img, err := os.ReadFile(line)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := os.ReadFile(strings.TrimSuffix(line, ".bin.png") + ".gt.txt")
	if err != nil {
		t.Fatal(err)
	}
	newKEK := func() string {
		k, err := keys.NewKEK(keys.AES256GCM)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	kek := newKEK()
	t.Setenv("VS_TEST_KEK", kek)
	reviews := filepath.Join(dir, "reviews.db")
	withJobs := func(c *config.Config) {
		c.Jobs.Dir = dir
		c.Reviews.Path = reviews
		c.Encryption.KEKEnv = "VS_TEST_KEK"
	}
	srv := apptest.Start(t, withJobs)
	resp, err := http.Post(srv.URL+"/v1/jobs?mode=line", "image/png", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	var st jobs.Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d", resp.StatusCode)
	}
	result := func(url string) string {
		t.Helper()
		for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get(url + "/v1/jobs/" + st.ID + "/result")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		t.Fatal("the job did not finish")
		return ""
	}
	text := strings.TrimSpace(string(truth))
	if got := result(srv.URL); !strings.Contains(got, text) {
		t.Fatalf("result %s, want %q in it", got, text)
	}
	srv.Stop(t)

	raw, err := os.ReadFile(filepath.Join(dir, "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(text)) || bytes.Contains(raw, img[:64]) {
		t.Fatal("the job database holds the input or the recognised text in clear")
	}
	// The review store was opened with the KEK too: it has a keyring.
	if _, err := review.OpenBolt(reviews, time.Second, keys.Config{}); !errors.Is(err, keys.ErrEncryptedStore) {
		t.Fatalf("the review store without a KEK: %v", err)
	}

	start := func(kekEnv string) error {
		cfg := config.Default()
		cfg.Server.Addr, cfg.Server.GRPCAddr, cfg.Server.AdminAddr = "127.0.0.1:0", "", ""
		cfg.Auth.Disabled = true
		cfg.Jobs.Dir = dir
		cfg.Encryption.KEKEnv = kekEnv
		a, err := app.New(app.Options{Config: cfg})
		if err == nil {
			a.Shutdown(t.Context())
		}
		return err
	}
	t.Setenv("VS_OTHER_KEK", newKEK())
	if err := start("VS_OTHER_KEK"); !errors.Is(err, keys.ErrWrongKEK) || !strings.Contains(err.Error(), "wrong key-encryption key") {
		t.Fatalf("another KEK: %v", err)
	}
	if err := start("VS_UNSET_KEK"); err == nil || !strings.Contains(err.Error(), "$VS_UNSET_KEK (encryption.kek_env) is empty") {
		t.Fatalf("an unset KEK: %v", err)
	}
	if err := start(""); !errors.Is(err, keys.ErrEncryptedStore) {
		t.Fatalf("no KEK: %v", err)
	}
	srv = apptest.Start(t, withJobs)
	if got := result(srv.URL); !strings.Contains(got, text) {
		t.Fatalf("result after the restart %s", got)
	}
}
