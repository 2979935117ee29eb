// Package e2e tests the real visionserve binary: built once, started as a
// separate process on 127.0.0.1, driven over HTTP and through its CLI, with
// the real Tesseract engine and the shared data.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/bench"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "visionserve-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "visionserve")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/visionserve")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building visionserve:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a visionserve process.
type server struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingAddr = regexp.MustCompile(`msg=serving .*addr=(127\.0\.0\.1:\d+)`)

// startServer runs `visionserve serve` on a free loopback port and waits
// until it is ready.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	// Fail early, with the shared-data message, when Tesseract is absent.
	testenv.Shared(t, "data/ocr")
	// Authentication is off (these tests are about serving); free ports
	// for the admin and gRPC listeners let servers run side by side.
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--no-auth"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			if m := servingAddr.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		t.Fatalf("server exited before serving: %v\n%s", err, s.logs.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start:\n%s", s.logs.String())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
			}
		}
	})
	return s
}

// rssBytes is the server process's resident set size.
func (s *server) rssBytes(t testing.TB) int64 { return s.procStatus(t, "VmRSS") }

// metric reads one unlabelled sample from /metrics.
func (s *server) metric(t testing.TB, name string) float64 {
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	t.Fatalf("metric %s not exposed", name)
	return 0
}

func postFile(client *http.Client, url, path string) (int, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Post(url, "image/png", bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Must show: the 250 shared text lines, each POSTed to a running server
// with default parameters: CER <= 1.0% overall and no failed request.
func TestE2ELinesCER(t *testing.T) {
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	type outcome struct {
		text string
		err  error
	}
	out := make([]outcome, len(samples))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i, smp := range samples {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			code, body, err := postFile(http.DefaultClient, s.url+"/v1/ocr", smp.Image)
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			var res ocr.Result
			if err == nil {
				err = json.Unmarshal(body, &res)
			}
			out[i] = outcome{res.Text, err}
		}()
	}
	wg.Wait()
	var score ocreval.Score
	failed := 0
	for i, o := range out {
		if o.err != nil {
			failed++
			t.Errorf("%s: %v", samples[i].Image, o.err)
			continue
		}
		if d := score.Add(o.text, samples[i].Truth); d > 0 {
			t.Logf("%s: %q vs %q", filepath.Base(filepath.Dir(samples[i].Image))+"/"+filepath.Base(samples[i].Image), ocreval.Normalize(o.text), samples[i].Truth)
		}
	}
	t.Logf("250 lines through the server: %v, %d failed", score, failed)
	if len(samples) != 250 {
		t.Errorf("%d samples, want 250", len(samples))
	}
	if score.CER() > 0.01 {
		t.Errorf("CER %.3f%% > 1%%", 100*score.CER())
	}
}

// Must show: no growth of goroutines or memory (Go or C) over 2,000
// requests, comparing after a warm-up with after the run.
func TestE2ENoLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 requests; skipped with -short")
	}
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	run := func(n int) {
		var wg sync.WaitGroup
		next := make(chan int)
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					code, body, err := postFile(client, s.url+"/v1/ocr", samples[i%len(samples)].Image)
					if err != nil || code != 200 {
						t.Errorf("request %d: %d %v %s", i, code, err, body)
					}
				}
			}()
		}
		for i := 0; i < n; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	// The server's goroutines for the connections the client closed end
	// once it has read their end: the counts below wait for that (the
	// scrape's own keep-alive connection stays, the same at both ends).
	// A goroutine that leaks never ends: the wait for it is bounded.
	closedConnsGone := func() {
		deadline := time.Now().Add(time.Minute)
		for s.metric(t, `visionserve_connections_open{listener="http"}`) > 1 {
			if time.Now().After(deadline) {
				t.Fatal("the connections the client closed are still open on the server")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	run(250) // warm-up: every line once, allocator arenas settle
	client.CloseIdleConnections()
	closedConnsGone()
	rss0, gor0 := s.rssBytes(t), s.metric(t, "go_goroutines")
	run(2000)
	client.CloseIdleConnections()
	closedConnsGone()
	gor1 := s.metric(t, "go_goroutines")
	for deadline := time.Now().Add(30 * time.Second); gor1 > gor0+2 && time.Now().Before(deadline); gor1 = s.metric(t, "go_goroutines") {
		time.Sleep(20 * time.Millisecond) // a closed connection's last goroutines are still ending
	}
	rss1 := s.rssBytes(t)
	t.Logf("after warm-up: RSS %.1f MiB, %v goroutines; after 2,000 requests: RSS %.1f MiB, %v goroutines",
		float64(rss0)/(1<<20), gor0, float64(rss1)/(1<<20), gor1)
	// Tolerance: allocator noise and Go heap sizing move RSS by a few MiB;
	// a leak of even 10 KiB per request would add 20 MiB.
	if growth := rss1 - rss0; growth > 16<<20 {
		t.Errorf("RSS grew by %.1f MiB over 2,000 requests", float64(growth)/(1<<20))
	}
	if gor1 > gor0+2 {
		t.Errorf("goroutines grew from %v to %v", gor0, gor1)
	}
}

// SIGTERM drains and exits 0.
func TestE2ESigtermExitsCleanly(t *testing.T) {
	s := startServer(t)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(s.logs.String(), "msg=stopped") {
		t.Errorf("no orderly stop in the log:\n%s", s.logs.String())
	}
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func TestE2EOCRCommand(t *testing.T) {
	pages := testenv.Shared(t, "data/ocr/pages")
	out, errOut, code := runCLI(t, "ocr", filepath.Join(pages, "phototest.tif"))
	truth, _ := os.ReadFile(filepath.Join(pages, "phototest.txt"))
	var s ocreval.Score
	s.Add(out, string(truth))
	if code != 0 || s.CER() > 0.01 {
		t.Fatalf("exit %d, %v\n%s%s", code, s, out, errOut)
	}
	out, _, code = runCLI(t, "ocr", "--format", "json", filepath.Join(pages, "phototest-rotated-L.png"))
	var res ocr.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Pages[0].Angle != 90 {
		t.Fatalf("json: exit %d, %v, %+v", code, err, res.Pages)
	}
	// A bad input: exit 1, one line on stderr, the good one still printed.
	bad := filepath.Join(t.TempDir(), "bad.png")
	os.WriteFile(bad, []byte("not a png"), 0o644)
	out, errOut, code = runCLI(t, "ocr", bad, filepath.Join(pages, "phototest.tif"))
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "bad.png") || !strings.Contains(out, "quick brown dog") {
		t.Fatalf("bad input: exit %d, stderr %q, stdout %q", code, errOut, out)
	}
	if _, errOut, code = runCLI(t, "ocr", "--format", "yaml", bad); code != 2 {
		t.Fatalf("bad flag: exit %d %q", code, errOut)
	}
	// A searchable PDF on stdout, whose text pdftotext reads; a document
	// format for several images is a usage error.
	out, errOut, code = runCLI(t, "ocr", "--format", "pdf", filepath.Join(pages, "phototest.tif"))
	if code != 0 || !strings.HasPrefix(out, "%PDF-") {
		t.Fatalf("pdf: exit %d, stderr %q, %.20q", code, errOut, out)
	}
	if _, err := exec.LookPath("pdftotext"); err == nil {
		cmd := exec.Command("pdftotext", "-", "-")
		cmd.Stdin = strings.NewReader(out)
		if text, err := cmd.Output(); err != nil || !strings.Contains(string(text), "quick brown dog") {
			t.Errorf("pdftotext of the PDF: %v %q", err, text)
		}
	}
	if _, errOut, code = runCLI(t, "ocr", "--format", "alto", filepath.Join(pages, "phototest.tif"), filepath.Join(pages, "eurotext.tif")); code != 2 || !strings.Contains(errOut, "one document") {
		t.Fatalf("alto of two images: exit %d %q", code, errOut)
	}
}

func TestE2EBenchCommand(t *testing.T) {
	lines := testenv.Shared(t, "data/ocr/lines")
	s := startServer(t)
	out, errOut, code := runCLI(t, "bench", "--url", s.url+"/v1/ocr", "--data", filepath.Join(lines, "book/0005"),
		"--concurrency", "2", "--duration", "3s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Succeeded == 0 || rep.Status["200"] != rep.Requests || rep.Confidence == nil || rep.Confidence.Mean < 0.5 {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(errOut, "requests,") {
		t.Errorf("no progress lines on stderr: %q", errOut)
	}
	// Open loop at a fixed rate.
	out, errOut, code = runCLI(t, "bench", "--url", s.url+"/v1/ocr", "--data", filepath.Join(lines, "book/0005"),
		"--rate", "5", "--duration", "2s", "--json", "--quiet")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Mode != "open" || rep.Requests < 5 {
		t.Fatalf("open loop: exit %d %v %+v %s", code, err, rep, errOut)
	}
}

// Calibration earns its place: on the shared lines, cross-validated
// calibration error of line confidence (is the line exactly right?) falls.
func TestE2ECalibrateCommand(t *testing.T) {
	lines := testenv.Shared(t, "data/ocr/lines")
	out, errOut, code := runCLI(t, "calibrate", "--data", lines)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Log(out)
	m := regexp.MustCompile(`line confidence:\s+ECE ([0-9.]+) -> ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line ECE in:\n%s", out)
	}
	before, _ := strconv.ParseFloat(m[1], 64)
	after, _ := strconv.ParseFloat(m[2], 64)
	if !(after < before) {
		t.Errorf("line ECE %v -> %v: calibration does not help", before, after)
	}
	if !strings.Contains(out, "calibration: [[") {
		t.Errorf("no calibration to paste in:\n%s", out)
	}
}
