package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// fleetLease is the job lease of the fleet tests: a SIGKILLed replica's
// tasks are claimed by the others at most this long after its last
// renewal.
const fleetLease = 3 * time.Second

// fleet is a PostgreSQL server and visionserve processes sharing it.
type fleet struct {
	pg      *pgtest.Server
	servers []*server
	cfgFile string
	secret  string
}

// startFleet starts PostgreSQL and n servers on it; jobsExtra is
// appended to the configuration's jobs section (indented two spaces), top
// to the file, args to each server's command line.
func startFleet(t testing.TB, n int, jobsExtra, top string, args ...string) *fleet {
	t.Helper()
	if _, err := exec.LookPath("pdftoppm"); err != nil {
		testenv.Missing(t, "poppler-utils (pdftoppm) is not installed; run hack/setup.sh")
	}
	testenv.Shared(t, "data/ocr")
	f := &fleet{pg: pgtest.Start(t)}
	var raw [32]byte
	rand.Read(raw[:])
	f.secret = "whsec_" + base64.StdEncoding.EncodeToString(raw[:])
	t.Setenv("VISIONSERVE_WEBHOOK_SECRET", f.secret)
	f.cfgFile = filepath.Join(t.TempDir(), "visionserve.yaml")
	cfg := fmt.Sprintf(`jobs:
  store: postgres
  postgres: %q
  lease: %s
  poll_interval: 250ms
  concurrency: 1
  pdf: {dpi: 150}
  webhook: {allow_private_networks: true, initial_backoff: 200ms, timeout: 5s}
%s%s`, f.pg.DSN, fleetLease, jobsExtra, top)
	if err := os.WriteFile(f.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		f.servers = append(f.servers, startServer(t, append([]string{"--config", f.cfgFile, "--workers", "1"}, args...)...))
	}
	return f
}

// workerOf returns the lease owner a server logged at start.
var workerLine = regexp.MustCompile(`msg="jobs started" .*worker=(\S+)`)

func workerOf(t *testing.T, s *server) string {
	m := workerLine.FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no worker id in the log:\n%s", s.logs.String())
	}
	return strings.Trim(m[1], `"`)
}

// dedupHook is a webhook receiver that verifies each delivery and
// de-duplicates on its Webhook-Id, as receivers should.
type dedupHook struct {
	key []byte
	mu  sync.Mutex
	// byJob holds each job's distinct delivery ids; deliveries counts
	// every request, duplicates included.
	byJob      map[string]map[string]bool
	deliveries int
	badSig     []error
}

func (h *dedupHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := webhook.Verify(h.key, r.Header, body, time.Now(), 5*time.Minute)
	var ev jobs.Event
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deliveries++
	if err != nil {
		h.badSig = append(h.badSig, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if h.byJob[ev.Data.ID] == nil {
		h.byJob[ev.Data.ID] = map[string]bool{}
	}
	h.byJob[ev.Data.ID][r.Header.Get(webhook.HeaderID)] = true
}

// fleetJob is a submitted job and the text of its pages.
type fleetJob struct {
	id     string
	truths []string
	status jobs.Status
}

// documents makes n jobs from the shared text lines: alternately a PDF
// and a multi-page TIFF of two or three lines each, the PDFs drawn at the
// DPI the servers render them at.
func documents(t testing.TB, samples []ocreval.Sample, n int) (bodies [][]byte, types []string, truths [][]string) {
	t.Helper()
	next := 0
	for i := 0; i < n; i++ {
		pages := 2 + i%2
		var grays []*image.Gray
		var texts []string
		for p := 0; p < pages; p++ {
			data, err := os.ReadFile(samples[next].Image)
			if err != nil {
				t.Fatal(err)
			}
			grays = append(grays, decodeGray(t, data))
			texts = append(texts, samples[next].Truth)
			next++
		}
		if i%2 == 0 {
			imgs := make([]image.Image, len(grays))
			for k, g := range grays {
				imgs[k] = g
			}
			bodies, types = append(bodies, jobstest.PDF(imgs, 150)), append(types, "application/pdf")
		} else {
			var tp []imagetest.TIFFPage
			for _, g := range grays {
				tp = append(tp, imagetest.TIFFPage{Img: g})
			}
			bodies, types = append(bodies, imagetest.TIFF(tp, false)), append(types, "image/tiff")
		}
		truths = append(truths, texts)
	}
	return bodies, types, truths
}

func submitJob(t testing.TB, url, contentType, key string, body []byte) jobs.Status {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	var st jobs.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// Must show (issue 13): three `visionserve serve` processes on one
// PostgreSQL database. 40 jobs (PDFs and multi-page TIFFs of the shared
// text lines) are submitted round-robin and polled round-robin; one
// process is SIGKILLed mid-run and not restarted. Every job finishes with
// every page exactly once and the single-process CER, no poll of a live
// process answers 404, and each job's webhook reaches a de-duplicating
// receiver exactly once (one delivery id per job), validly signed.
func TestE2EJobsFleetPostgres(t *testing.T) {
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	bodies, types, truths := documents(t, samples, n)
	f := startFleet(t, 3, "", "")
	key, _ := webhook.ParseSecret(f.secret)
	hook := &dedupHook{key: key, byJob: map[string]map[string]bool{}}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()

	start := time.Now()
	var all []*fleetJob
	totalPages := 0
	for i := range bodies {
		s := f.servers[i%3]
		st := submitJob(t, s.url+"/v1/jobs?webhook_url="+hookSrv.URL+"/hook", types[i], "", bodies[i])
		all = append(all, &fleetJob{id: st.ID, truths: truths[i], status: st})
		totalPages += len(truths[i])
	}

	// Poll round-robin over the live processes; SIGKILL the second once
	// a tenth of the pages are done.
	alive := slices.Clone(f.servers)
	killed := false
	wrong404, polls := 0, 0
	var victimWorker string
	leasedAtKill := -1
	pagesDone := func() (pages, done int) {
		for _, j := range all {
			pages += j.status.Progress.PagesDone
			if j.status.State.Terminal() {
				done++
			}
		}
		return pages, done
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		for _, j := range all {
			if j.status.State.Terminal() {
				continue
			}
			s := alive[polls%len(alive)]
			polls++
			var st jobs.Status
			switch code := getJSON(t, s.url+"/v1/jobs/"+j.id, &st); code {
			case http.StatusOK:
				j.status = st
			case http.StatusNotFound:
				wrong404++
			default:
				t.Fatalf("poll: %d", code)
			}
			if pages, _ := pagesDone(); !killed && pages >= totalPages/10 {
				// Freeze the victim, and kill it only while it holds a
				// task: between two tasks it holds none, and a kill then
				// would prove nothing about taking tasks over.
				victim := f.servers[1]
				victimWorker = workerOf(t, victim)
				if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				if leasesOf(t, f.pg.DSN, victimWorker) == 0 {
					if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-victim.done
				leasedAtKill = leasesOf(t, f.pg.DSN, victimWorker)
				alive = []*server{f.servers[0], f.servers[2]}
				killed = true
				t.Logf("SIGKILLed a process with %d of %d pages done; it held %d task leases (lease %v)", pages, totalPages, leasedAtKill, fleetLease)
			}
		}
		if _, done := pagesDone(); done == n {
			break
		}
		if time.Now().After(deadline) {
			_, done := pagesDone()
			t.Fatalf("%d of %d jobs finished", done, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if !killed {
		t.Fatal("every job finished before a process could be killed: the test proves nothing")
	}
	if leasedAtKill < 1 {
		t.Errorf("the killed process held no task lease: its tasks were not taken over")
	}
	if n := leasesOf(t, f.pg.DSN, victimWorker); n != 0 {
		t.Errorf("%d tasks are still leased to the dead process", n)
	}

	// Every page exactly once, in order, read right.
	var score ocreval.Score
	for i, j := range all {
		if j.status.State != jobs.StateSucceeded || j.status.Progress.PagesDone != len(j.truths) || j.status.Progress.PagesFailed != 0 {
			t.Fatalf("job %d: %+v", i, j.status)
		}
		var res jobs.Result
		if code := getJSON(t, alive[i%2].url+"/v1/jobs/"+j.id+"/result", &res); code != 200 {
			t.Fatalf("result %d: %d", i, code)
		}
		if len(res.Pages) != len(j.truths) {
			t.Fatalf("job %d: %d pages, want %d", i, len(res.Pages), len(j.truths))
		}
		for p, page := range res.Pages {
			if page.Index != p || page.Source != (jobs.Source{Item: 0, Page: p}) || page.Error != nil || page.Page == nil {
				t.Fatalf("job %d page %d: index %d source %+v error %+v", i, p, page.Index, page.Source, page.Error)
			}
			var lines []string
			for _, l := range page.Lines {
				lines = append(lines, l.Text)
			}
			score.Add(strings.Join(lines, "\n"), j.truths[p])
		}
	}
	t.Logf("%d jobs, %d pages on 3 processes (one SIGKILLed) in %v; %v; %d polls, %d wrong 404s", n, totalPages, elapsed.Round(time.Second), score, polls, wrong404)
	if wrong404 != 0 {
		t.Errorf("%d polls of a live process answered 404", wrong404)
	}
	if score.CER() > 0.02 {
		t.Errorf("CER %.2f%%: pages and documents do not match", 100*score.CER())
	}

	// Webhooks: one delivery id per job, every delivery signed.
	for wait := time.Now().Add(2 * time.Minute); ; {
		hook.mu.Lock()
		got := len(hook.byJob)
		hook.mu.Unlock()
		if got >= n || time.Now().After(wait) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.badSig) > 0 {
		t.Errorf("%d deliveries did not verify: %v", len(hook.badSig), hook.badSig[0])
	}
	for i, j := range all {
		if ids := hook.byJob[j.id]; len(ids) != 1 {
			t.Errorf("job %d: %d distinct deliveries, want exactly 1", i, len(ids))
		}
	}
	t.Logf("webhooks: %d jobs announced, %d deliveries received (duplicates of one delivery id are allowed and de-duplicated)", len(hook.byJob), hook.deliveries)
}

// leasesOf counts the tasks leased to worker.
func leasesOf(t *testing.T, dsn, worker string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM visionserve_job_tasks WHERE lease_owner = $1`, worker).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Must show (issues 11 item 7 and 13): fair shares across replicas.
// Tenant A floods three processes (one runner each) with 200 one-page
// jobs; tenant B then submits one three-page PDF (three tasks). Claims
// are fair across tenants (fewest tasks running, then least recently
// served), so:
//   - the first runner to come free takes B's first task: between B's job
//     being stored and that claim, only claims already under way (at most
//     one per runner) go to A;
//   - B keeps a fair share of the runners until its tasks are done, so it
//     finishes before a quarter of A's jobs that were waiting with it do.
//
// First in, first out, B would wait for every one of them. The claims
// are read from the servers' debug log ("task claimed").
func TestE2EJobsTenantFlood(t *testing.T) {
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	keyA, hashA, _ := auth.GenerateKey()
	keyB, hashB, _ := auth.GenerateKey()
	f := startFleet(t, 3, "  max_queued: 400\n  tenant: {max_queued: 250}\n", fmt.Sprintf(`auth:
  api_keys:
    - {name: a, hash: %q, tenant: A, scopes: [infer]}
    - {name: b, hash: %q, tenant: B, scopes: [infer]}
`, hashA, hashB), "--log-level", "debug")
	const runners, flood = 3, 200

	// One submitter per process: a tenant may have two uploads read at
	// once per process (jobs.tenant.max_concurrent_uploads).
	var mu sync.Mutex
	var aIDs []string
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Go(func() {
			for i := w; i < flood; i += 3 {
				data, err := os.ReadFile(samples[i%len(samples)].Image)
				if err != nil {
					t.Error(err)
					return
				}
				st := submitJob(t, f.servers[w].url+"/v1/jobs", "image/png", keyA, data)
				mu.Lock()
				aIDs = append(aIDs, st.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	var pages []image.Image
	for _, s := range samples[len(samples)-3:] {
		data, err := os.ReadFile(s.Image)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, decodeGray(t, data))
	}
	b := submitJob(t, f.servers[1].url+"/v1/jobs", "application/pdf", keyB, jobstest.PDF(pages, 150))
	get := func(i int, key, id string) jobs.Status {
		req, _ := http.NewRequest(http.MethodGet, f.servers[i%3].url+"/v1/jobs/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st jobs.Status
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
			t.Fatalf("status of %s: %d", id, resp.StatusCode)
		}
		return st
	}
	deadline := time.Now().Add(10 * time.Minute)
	for i := 0; !b.State.Terminal(); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("B's job did not finish: %+v", b)
		}
		time.Sleep(50 * time.Millisecond)
		b = get(i, keyB, b.ID)
	}
	if b.State != jobs.StateSucceeded || b.Progress.PagesDone != 3 {
		t.Fatalf("B's job %+v", b)
	}

	// The claims in time order. The server logs "job submitted" once the
	// job is committed, and another process may claim B's first task
	// before that line is written (a busy machine can hold the submitting
	// goroutine between the two): B's claims count wherever they fall,
	// and A's count from the line on.
	m := regexp.MustCompile(`time=(\S+) level=INFO msg="job submitted" .*job=` + b.ID).FindStringSubmatch(f.servers[1].logs.String())
	if m == nil {
		t.Fatalf("B's submission is not in the log")
	}
	stored, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	type claim struct {
		at     time.Time
		tenant string
	}
	var claims []claim
	for _, s := range f.servers {
		for _, m := range claimLine.FindAllStringSubmatch(s.logs.String(), -1) {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				t.Fatal(err)
			}
			claims = append(claims, claim{at, m[2]})
		}
	}
	slices.SortFunc(claims, func(x, y claim) int { return x.at.Compare(y.at) })
	firstB, nB, seenB := 0, 0, false // firstB: A's claims after B's job was stored and before B's first
	for _, c := range claims {
		switch {
		case c.tenant == "tenant:B":
			nB++
			seenB = true
		case !seenB && c.at.After(stored):
			firstB++
		}
	}
	finishedBefore, unfinished := 0, 0
	for i, id := range aIDs {
		switch a := get(i, keyA, id); {
		case !a.State.Terminal() || a.FinishedAt.After(*b.FinishedAt):
			unfinished++
		case a.FinishedAt.After(b.CreatedAt):
			finishedBefore++
		}
	}
	waiting := finishedBefore + unfinished
	t.Logf("B's 3-page job, stored behind %d of A's unfinished jobs: its first task was claimed after %d of A's claims (bound %d, those under way); it finished in %v, while %d of those %d A jobs finished (bound %d)",
		waiting, firstB, runners, b.FinishedAt.Sub(b.CreatedAt).Round(time.Millisecond), finishedBefore, waiting, waiting/4)
	if nB != 3 {
		t.Fatalf("%d claims of B's tasks in the log, want 3", nB)
	}
	if firstB > runners {
		t.Errorf("A's tasks were claimed %d times before B's first, more than the %d already under way", firstB, runners)
	}
	if finishedBefore > waiting/4 {
		t.Errorf("B's job finished after %d of the %d A jobs waiting with it", finishedBefore, waiting)
	}
}

// claimLine is the debug log line of a claimed task.
var claimLine = regexp.MustCompile(`time=(\S+) level=DEBUG msg="task claimed" .*tenant=(\S+)`)
