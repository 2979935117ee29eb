// Package fleet_test runs what deploy/ ships for real: the server image under
// podman with a read-only root filesystem (TestImageSmoke, `make
// image-smoke`), and the images, the operator and the Helm chart on a real
// single-node Kubernetes (TestE2ECluster, `make e2e-cluster`). Both need root
// and the images hack/image.sh built; each runs only when its make target
// asks for it (an environment variable names the image or the image
// directory) and otherwise skips, saying which target runs it.
package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/tiff"

	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// run runs a command, logs it, and returns its standard output; it fails the
// test on a non-zero exit, with the command's standard error.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func runErr(stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// hostBinary builds bin/visionserve for this host once (the load generator
// and the model tools the tests run outside the cluster).
func hostBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "visionserve-fleet-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "visionserve")
		_, binErr = runErr("", "go", "build", "-o", binPath, filepath.Join(repoRoot(t), "cmd", "visionserve"))
	})
	if binErr != nil {
		t.Fatalf("building visionserve: %v", binErr)
	}
	return binPath
}

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// post sends a file's bytes and returns the status and the body.
func post(ctx context.Context, client *http.Client, url, contentType, key string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// waitHTTP polls url until it answers 200 or the timeout passes.
func waitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s did not answer 200 within %s (last: %s)", url, timeout, last)
}

// ocrResult is the part of an OCR answer the tests read.
type ocrResult struct {
	Model struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"model"`
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
}

// phototest is the shared page and its ground truth.
func phototest(t testing.TB) (image []byte, truth string) {
	t.Helper()
	img, err := os.ReadFile(testenv.Shared(t, "data/ocr/pages/phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	gt, err := os.ReadFile(testenv.Shared(t, "data/ocr/pages/phototest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return img, string(gt)
}

// checkOCR posts the phototest page to base+/v1/ocr and checks its
// character error rate; it returns the answer.
func checkOCR(t testing.TB, client *http.Client, base, key string, maxCER float64) ocrResult {
	t.Helper()
	img, truth := phototest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code, body, err := post(ctx, client, base+"/v1/ocr", "image/tiff", key, img)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST %s/v1/ocr: %d %v: %.300s", base, code, err, body)
	}
	var res ocrResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("OCR answer: %v: %.300s", err, body)
	}
	var s ocreval.Score
	s.Add(res.Text, truth)
	t.Logf("OCR phototest via %s: model %s/%s, CER %.2f%%, confidence %.3f", base, res.Model.Name, res.Model.Version, 100*s.CER(), res.Confidence)
	if s.CER() > maxCER {
		t.Fatalf("CER %.2f%% above %.2f%%; text:\n%s", 100*s.CER(), 100*maxCER, res.Text)
	}
	return res
}

// checkPDFJob submits the phototest page as a PDF job to base+/v1/jobs,
// waits for it and checks the result's character error rate: the image's
// PDF renderer (poppler-utils), its job store and, when the server seals
// at rest, its sealing work inside the container.
func checkPDFJob(t testing.TB, client *http.Client, base, key string, maxCER float64) {
	t.Helper()
	page, truth := phototest(t)
	img, err := tiff.Decode(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code, body, err := post(ctx, client, base+"/v1/jobs", "application/pdf", key, jobstest.PDF([]image.Image{img}, 100))
	var st struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err != nil || code != http.StatusAccepted || json.Unmarshal(body, &st) != nil {
		t.Fatalf("POST %s/v1/jobs: %d %v: %.300s", base, code, err, body)
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, v) != nil {
			t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, b)
		}
	}
	for st.State != "succeeded" {
		if st.State == "failed" || st.State == "canceled" || ctx.Err() != nil {
			t.Fatalf("PDF job %s: %s", st.ID, st.State)
		}
		time.Sleep(200 * time.Millisecond)
		get("/v1/jobs/"+st.ID, &st)
	}
	var res struct{ Text string }
	get("/v1/jobs/"+st.ID+"/result", &res)
	var s ocreval.Score
	s.Add(res.Text, truth)
	t.Logf("PDF job of phototest via %s: CER %.2f%%", base, 100*s.CER())
	if s.CER() > maxCER {
		t.Fatalf("PDF job: CER %.2f%% above %.2f%%; text:\n%s", 100*s.CER(), 100*maxCER, res.Text)
	}
}

// checkFaces posts a photo of one person to base+/v1/faces/detect and checks
// that a face comes back.
func checkFaces(t testing.TB, client *http.Client, base, key string) {
	t.Helper()
	img, err := os.ReadFile(testenv.Shared(t, "data/face/face_recognition-examples/test_images/obama3.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code, body, err := post(ctx, client, base+"/v1/faces/detect", "image/jpeg", key, img)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST %s/v1/faces/detect: %d %v: %.300s", base, code, err, body)
	}
	var res struct {
		Faces []struct {
			Box   map[string]float64 `json:"box"`
			Score float64            `json:"score"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("faces answer: %v: %.300s", err, body)
	}
	if len(res.Faces) == 0 {
		t.Fatalf("no face found in obama3.jpg: %.300s", body)
	}
	t.Logf("faces via %s: %d face(s), first box %v score %.3f", base, len(res.Faces), res.Faces[0].Box, res.Faces[0].Score)
}

// repository is a model repository made with the visionserve CLI: a signing
// key, ocr-eng 1 from the system's Tesseract English model, face-detect 1
// and face-embed 1 from the shared face models.
type repository struct {
	home   string // HOME of `model bootstrap`: keys/, models/
	models string
	pubKey string
}

// bootstrap runs `visionserve model bootstrap` with bin (a host binary, or
// a command prefix that runs the image's) into home.
func bootstrap(t testing.TB, bin []string, home, tessdata, faces string) repository {
	t.Helper()
	args := append(bin[1:], "model", "bootstrap", "--home", home, "--tessdata", tessdata, "--face", faces)
	out := run(t, "", bin[0], args...)
	t.Logf("model bootstrap: %s", strings.TrimSpace(out))
	return repository{home: home, models: filepath.Join(home, "models"), pubKey: filepath.Join(home, "keys", "public.pem")}
}

// tessdata is where Debian's tesseract-ocr-eng puts the English model.
func tessdata(t testing.TB) string {
	t.Helper()
	for _, d := range []string{"/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tessdata"} {
		if _, err := os.Stat(filepath.Join(d, "eng.traineddata")); err == nil {
			return d
		}
	}
	testenv.Missing(t, "eng.traineddata not found (Debian: tesseract-ocr-eng; hack/setup.sh)")
	return ""
}

// chmodWorld makes a directory tree readable by the image's non-root user.
func chmodWorld(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		if strings.HasSuffix(p, "private.pem") {
			return nil
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
