package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// faceConfig writes a configuration file that turns face recognition on
// with the shared models; extra is appended under face.gallery.
func faceConfig(t *testing.T, gallery string) string {
	t.Helper()
	onnxtest.Init(t) // skip (fail in CI) without ONNX Runtime, as the server would fail
	cfg := fmt.Sprintf(`face:
  detector: %s
  embedder: %s
  gallery:
%s
`, testenv.Shared(t, "models/face/yunet_s_dynamic.onnx"), testenv.Shared(t, "models/face/MobileFaceNet.onnx"), gallery)
	path := filepath.Join(t.TempDir(), "visionserve.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func do(client *http.Client, method, url, ct string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// orlImages reads the ORL faces: subject -> images.
func orlImages(t *testing.T) map[string][][]byte {
	t.Helper()
	dir := testenv.Shared(t, "data/face/orl-faces")
	out := map[string][][]byte{}
	for s := 1; s <= 20; s++ {
		sub := fmt.Sprintf("s%d", s)
		for i := 1; i <= 10; i++ {
			data, err := os.ReadFile(filepath.Join(dir, sub, fmt.Sprintf("%d.pgm", i)))
			if err != nil {
				t.Fatal(err)
			}
			out[sub] = append(out[sub], data)
		}
	}
	return out
}

// TestE2EEnrollSurvivesKill9 enrolls faces continuously from several
// clients into the embedded store and kills the server with SIGKILL in the
// middle, twice (the second run starts from the first crash's files). A
// final restart must hold every enroll that was answered 201, and identify
// from the rebuilt index.
func TestE2EEnrollSurvivesKill9(t *testing.T) {
	store := filepath.Join(t.TempDir(), "galleries.db")
	cfg := faceConfig(t, "    path: "+store)
	faces := orlImages(t)
	client := &http.Client{Timeout: 30 * time.Second}

	type ack struct{ subject, id string }
	var acked []ack
	for round := range 2 {
		s := startServer(t, "--config", cfg)
		if code, body, err := do(client, "PUT", s.url+"/v1/galleries/crash", "", nil); err != nil || (code != 201 && code != 200) {
			t.Fatalf("create gallery: %d %s %v", code, body, err)
		}
		var (
			mu   sync.Mutex
			got  []ack
			sent atomic.Int64
			stop = make(chan struct{})
			wg   sync.WaitGroup
		)
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					sub := fmt.Sprintf("s%d", 1+(w*5+i)%20)
					img := faces[sub][(round*3+i/20)%9] // image 10 is kept for identify
					sent.Add(1)
					code, body, err := do(client, "POST", s.url+"/v1/galleries/crash/subjects/"+sub+"/faces", "image/x-portable-graymap", img)
					if err != nil {
						return // the server is gone
					}
					if code != http.StatusCreated {
						t.Errorf("enroll %s: %d %s", sub, code, body)
						return
					}
					var r struct {
						FaceID string `json:"face_id"`
					}
					if err := json.Unmarshal(body, &r); err != nil || r.FaceID == "" {
						t.Errorf("enroll answer %s: %v", body, err)
						return
					}
					mu.Lock()
					got = append(got, ack{sub, r.FaceID})
					mu.Unlock()
				}
			})
		}
		// Let enrolls run, then kill -9 with requests in flight.
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= 40 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := s.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.done
		close(stop)
		wg.Wait()
		if len(got) < 10 {
			t.Fatalf("round %d: only %d enrolls answered before the kill:\n%s", round, len(got), s.logs.String())
		}
		t.Logf("round %d: %d enrolls sent, %d answered before SIGKILL", round, sent.Load(), len(got))
		acked = append(acked, got...)
	}

	// Restart on the same store: every acknowledged face is there.
	s2 := startServer(t, "--config", cfg)
	bySubject := map[string]map[string]bool{}
	for _, a := range acked {
		if bySubject[a.subject] == nil {
			code, body, err := do(client, "GET", s2.url+"/v1/galleries/crash/subjects/"+a.subject, "", nil)
			if err != nil || code != 200 {
				t.Fatalf("subject %s after restart: %d %s %v", a.subject, code, body, err)
			}
			var r struct {
				Faces []struct {
					FaceID string `json:"face_id"`
				}
			}
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			bySubject[a.subject] = map[string]bool{}
			for _, f := range r.Faces {
				bySubject[a.subject][f.FaceID] = true
			}
		}
		if !bySubject[a.subject][a.id] {
			t.Errorf("acknowledged face %s of %s lost in a crash", a.id, a.subject)
		}
	}
	stored := 0
	for _, ids := range bySubject {
		stored += len(ids)
	}
	t.Logf("after restart: all %d acknowledged faces present (%d stored in those subjects, including any written but not answered)", len(acked), stored)

	// The rebuilt index identifies: image 10 of a subject, never enrolled,
	// finds it.
	sub := acked[0].subject
	code, body, err := do(client, "POST", s2.url+"/v1/galleries/crash/identify", "image/x-portable-graymap", faces[sub][9])
	if err != nil || code != 200 || !strings.Contains(string(body), `"subject":"`+sub+`"`) {
		t.Errorf("identify %s after restart: %d %s %v", sub, code, body, err)
	}
}

// TestE2ESharedGalleries runs two server processes on one PostgreSQL
// database, as two replicas, and checks that an enroll or delete through
// one becomes visible through the other.
func TestE2ESharedGalleries(t *testing.T) {
	pg := pgtest.Start(t)
	cfg := faceConfig(t, "    store: postgres\n    postgres: "+pg.DSN+"\n    poll_interval: 1s")
	a := startServer(t, "--config", cfg)
	b := startServer(t, "--config", cfg)
	client := &http.Client{Timeout: 30 * time.Second}
	faces := orlImages(t)

	if code, body, err := do(client, "PUT", a.url+"/v1/galleries/shared", "", nil); err != nil || code != 201 {
		t.Fatalf("create on a: %d %s %v", code, body, err)
	}
	if code, body, err := do(client, "POST", a.url+"/v1/galleries/shared/subjects/s7/faces", "image/x-portable-graymap", faces["s7"][0]); err != nil || code != 201 {
		t.Fatalf("enroll on a: %d %s %v", code, body, err)
	}
	identified := func(srv *server) bool {
		code, body, err := do(client, "POST", srv.url+"/v1/galleries/shared/identify", "image/x-portable-graymap", faces["s7"][5])
		return err == nil && code == 200 && strings.Contains(string(body), `"subject":"s7"`)
	}
	// b follows within about a poll interval (notified, sooner); each
	// identify is a whole request, which a loaded machine can make take
	// seconds: no time is asserted, the bound only ends a broken test.
	const bound = 2 * time.Minute
	start := time.Now()
	for !identified(b) {
		if time.Since(start) > bound {
			t.Fatalf("enroll through a not visible through b within %v", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("b identified a's enroll %v after it was answered", time.Since(start).Round(time.Millisecond))

	if code, body, err := do(client, "DELETE", b.url+"/v1/galleries/shared/subjects/s7", "", nil); err != nil || code != 204 {
		t.Fatalf("delete on b: %d %s %v", code, body, err)
	}
	start = time.Now()
	for identified(a) {
		if time.Since(start) > bound {
			t.Fatalf("delete through b not visible through a within %v", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a stopped identifying the deleted subject %v after the delete was answered", time.Since(start).Round(time.Millisecond))
}
