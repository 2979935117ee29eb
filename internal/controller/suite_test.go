package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/controller/controltest"
)

// The envtest suite: one real kube-apiserver and etcd for the package, the
// operator's manager running against them, and a direct (uncached) client
// for the tests. Envtest runs no other controllers: no Deployment or
// ReplicaSet controller makes pods and no garbage collector deletes owned
// objects, so tests create the pods they need and check owner references.
var (
	k8s      client.Client
	cached   client.Client // the manager's: what the reconciler sees
	startErr error
	fakes    = &fakeFleet{pods: map[string]*fakePod{}}
)

func TestMain(m *testing.M) {
	code := func() int {
		cfg, stop, err := controltest.Start()
		if err != nil {
			startErr = err
			return m.Run() // every envtest test skips or fails with the reason
		}
		defer stop()
		out := io.Discard
		if os.Getenv("VISIONSERVE_TEST_LOG") != "" {
			out = os.Stderr
		}
		ctrl.SetLogger(zap.New(zap.WriteTo(out), zap.UseDevMode(true), zap.Level(zapcore.Level(-1))))

		scheme := runtime.NewScheme()
		must(clientgoscheme.AddToScheme(scheme))
		must(v1alpha1.AddToScheme(scheme))
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme:  scheme,
			Cache:   CacheOptions(),
			Metrics: metricsserver.Options{BindAddress: "0"},
		})
		must(err)
		must(Setup(mgr, Options{PodURL: fakes.url, ServiceMonitors: true, Recheck: time.Second,
			HTTPClient: &http.Client{Timeout: 2 * time.Second}}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		cached = mgr.GetClient()
		k8s, err = client.New(cfg, client.Options{Scheme: scheme})
		must(err)
		code := m.Run()
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
		fakes.close()
		return code
	}()
	os.Exit(code)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// env skips or fails the test when the control plane is not there.
func env(t *testing.T) context.Context {
	t.Helper()
	controltest.Require(t, startErr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a namespace for one test.
func namespace(t *testing.T, ctx context.Context) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// eventually polls check until it returns nil or the timeout passes. The
// timeout only bounds a failing test; nothing asserts how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warned waits for a warning event with reason about VisionService name.
func warned(t *testing.T, ctx context.Context, ns, name, reason string) {
	t.Helper()
	eventually(t, timeout, "a "+reason+" warning", func() error {
		for _, e := range events(t, ctx, ns, name) {
			if e.Reason == reason && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("no %s event", reason)
	})
}

// events lists the events about one object, oldest first.
func events(t *testing.T, ctx context.Context, ns, name string) []corev1.Event {
	t.Helper()
	var list corev1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.InvolvedObject.Kind == "VisionService" {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].FirstTimestamp.Before(&out[j].FirstTimestamp) })
	return out
}

// fakeFleet maps fake pods (by namespace/name) to local servers that act
// like visionserve: /metrics with counters that grow with a set QPS, and
// the traffic admin API.
type fakeFleet struct {
	mu   sync.Mutex
	pods map[string]*fakePod
}

func (f *fakeFleet) url(p *corev1.Pod, _ int32) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp := f.pods[p.Namespace+"/"+p.Name]; fp != nil {
		return fp.srv.URL
	}
	return "http://127.0.0.1:1" // nothing listens: a failed scrape
}

func (f *fakeFleet) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pods {
		p.srv.Close()
	}
}

// fakePod is one server. Every scrape advances its counters by QPS x the
// time since the last scrape, each request a prediction whose confidence
// is its version's mean; versions share the requests by weight.
type fakePod struct {
	srv *httptest.Server

	mu       sync.Mutex
	qps      float64
	last     time.Time
	requests float64
	conf     map[string]float64 // version -> mean confidence
	share    map[string]float64 // version -> share of the requests
	counts   map[string]float64 // version -> predictions
	weights  map[string]int     // last PUT traffic weights
	puts     int
}

func newFakePod(t *testing.T, ns, name string, conf map[string]float64) *fakePod {
	fp := &fakePod{conf: conf, share: map[string]float64{}, counts: map[string]float64{}, last: time.Now()}
	for v := range conf {
		fp.share[v] = 1 / float64(len(conf))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", fp.metrics)
	mux.HandleFunc("PUT /v1/models/{model}/traffic", fp.traffic)
	fp.srv = httptest.NewServer(mux)
	fakes.mu.Lock()
	fakes.pods[ns+"/"+name] = fp
	fakes.mu.Unlock()
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *fakePod) setQPS(q float64) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.advance()
	fp.qps = q
}

// advance accounts for the traffic since the last call; mu is held.
func (fp *fakePod) advance() {
	now := time.Now()
	n := fp.qps * now.Sub(fp.last).Seconds()
	fp.last = now
	fp.requests += n
	for v := range fp.conf {
		fp.counts[v] += n * fp.share[v]
	}
}

func (fp *fakePod) metrics(w http.ResponseWriter, _ *http.Request) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.advance()
	fmt.Fprintf(w, "# TYPE visionserve_http_requests_total counter\n")
	fmt.Fprintf(w, "visionserve_http_requests_total{route=\"POST /v1/ocr\",method=\"POST\",code=\"200\"} %f\n", fp.requests)
	fmt.Fprintf(w, "visionserve_http_requests_total{route=\"GET /metrics\",method=\"GET\",code=\"200\"} 1000\n")
	fmt.Fprintf(w, "# TYPE visionserve_prediction_confidence histogram\n")
	for v, c := range fp.counts {
		n := int64(c) // whole predictions, each at its version's mean
		fmt.Fprintf(w, "visionserve_prediction_confidence_bucket{model=\"ocr-eng\",version=%q,le=\"+Inf\"} %d\n", v, n)
		fmt.Fprintf(w, "visionserve_prediction_confidence_sum{model=\"ocr-eng\",version=%q} %f\n", v, float64(n)*fp.conf[v])
		fmt.Fprintf(w, "visionserve_prediction_confidence_count{model=\"ocr-eng\",version=%q} %d\n", v, n)
	}
	fmt.Fprintf(w, "# TYPE visionserve_workers gauge\nvisionserve_workers 2\n")
	fmt.Fprintf(w, "# TYPE visionserve_workers_busy gauge\nvisionserve_workers_busy %f\n", min(2, fp.qps/10))
	fmt.Fprintf(w, "# TYPE visionserve_queue_length gauge\nvisionserve_queue_length 0\n")
}

// adminKey is the models:admin key the fake pods accept.
const adminKey = "vsk_test_admin_key_0123456789"

func (fp *fakePod) traffic(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+adminKey {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var body struct {
		Weights map[string]int `json:"weights"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.advance()
	fp.weights, fp.puts = body.Weights, fp.puts+1
	total := 0
	for _, n := range body.Weights {
		total += n
	}
	for v := range fp.share {
		fp.share[v] = float64(body.Weights[v]) / float64(max(total, 1))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (fp *fakePod) lastWeights() (map[string]int, int) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.weights, fp.puts
}
