package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/bench"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/testenv"
)

// TestE2ECluster runs the fleet on a real single-node Kubernetes that it
// starts (hack/cluster.sh) and tears down: the images hack/image.sh built,
// the operator from deploy/operator, the chart from deploy/helm, and then,
// against real pods under load from real `visionserve bench` processes:
// scaling on QPS and on confidence and back down without flapping, a rolling
// image update and a model canary with no failed request, a promoted canary
// and a rolled-back bad one, a pod killed under load and a drain held by the
// PodDisruptionBudget. It logs the time of each phase and the replica counts
// over time.
//
// VISIONSERVE_IMAGE_DIR names the directory of the image archives and
// images.txt (`make e2e-cluster` sets it); without it the test skips.
func TestE2ECluster(t *testing.T) {
	dir := os.Getenv("VISIONSERVE_IMAGE_DIR")
	if dir == "" {
		t.Skip("runs with `make e2e-cluster` (VISIONSERVE_IMAGE_DIR names the images hack/image.sh built)")
	}
	root := repoRoot(t)
	if why, err := runErr("", filepath.Join(root, "hack", "cluster.sh"), "check"); err != nil {
		testenv.Missing(t, "this machine cannot run the local cluster: "+strings.TrimSpace(why))
	}
	e := newClusterEnv(t, root, dir)
	e.phase("cluster up", e.up)
	e.phase("operator from deploy/operator", e.installOperator)
	e.phase("VisionService Running; OCR and faces through its Service", e.firstService)
	e.phase("scale on QPS and back", e.scaleOnQPS)
	e.phase("scale on confidence and back", e.scaleOnConfidence)
	e.phase("rolling image update under load", e.rollingUpdate)
	e.phase("model canary at 10% under load, promoted", e.goodCanary)
	e.phase("bad canary rolled back", e.badCanary)
	e.phase("pod force-deleted under load", e.killPod)
	e.phase("drain held by the PodDisruptionBudget", e.drain)
	e.phase("Helm release of deploy/helm answers", e.helmRelease)
	e.summary()
}

const (
	vsName    = "ocr"
	namespace = "default"
	claimName = "e2e-models"
)

type clusterEnv struct {
	t        *testing.T
	root     string
	imageDir string
	tag      string // of the images in imageDir
	bin      string // host visionserve (bench, model tools)
	kubectl  string
	k8s      client.Client
	state    string

	repo       repository
	clientKey  string
	adminKey   string
	adminHash  string
	clientHash string
	svcURL     string

	start  time.Time
	phases []phaseTime
	tl     *timeline
}

type phaseTime struct {
	name string
	took time.Duration
}

func newClusterEnv(t *testing.T, root, imageDir string) *clusterEnv {
	e := &clusterEnv{t: t, root: root, imageDir: imageDir, start: time.Now()}
	e.state = filepath.Join(t.TempDir(), "cluster")
	t.Setenv("CLUSTER_STATE", e.state)
	t.Setenv("CLUSTER_NAME", "vs-e2e")
	e.kubectl = filepath.Join(e.state, "bin", "kubectl")
	t.Setenv("KUBECONFIG", filepath.Join(e.state, "admin.kubeconfig"))
	e.tag = imageTag(t, imageDir)
	e.bin = hostBinary(t)
	return e
}

// imageTag reads the tag of localhost/visionserve from images.txt.
func imageTag(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "images.txt"))
	if err != nil {
		t.Fatalf("images.txt: %v (run hack/image.sh)", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		ref, _, _ := strings.Cut(line, "\t")
		if name, tag, ok := strings.Cut(ref, ":"); ok && name == "localhost/visionserve" && strings.HasSuffix(tag, "-amd64") {
			return strings.TrimSuffix(tag, "-amd64")
		}
	}
	t.Fatalf("no localhost/visionserve amd64 image in %s/images.txt", dir)
	return ""
}

func (e *clusterEnv) image() string { return "localhost/visionserve:" + e.tag + "-amd64" }
func (e *clusterEnv) operatorImage() string {
	return "localhost/visionserve-operator:" + e.tag + "-amd64"
}

func (e *clusterEnv) logf(format string, args ...any) {
	e.t.Helper()
	e.t.Logf("[%6.1fs] %s", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// phase runs one step, timing it; a failed step ends the test.
func (e *clusterEnv) phase(name string, fn func()) {
	e.t.Helper()
	e.logf("=== %s", name)
	start := time.Now()
	fn()
	took := time.Since(start)
	e.phases = append(e.phases, phaseTime{name, took})
	e.logf("--- %s: %s", name, took.Round(100*time.Millisecond))
}

func (e *clusterEnv) summary() {
	var b strings.Builder
	for _, p := range e.phases {
		fmt.Fprintf(&b, "\n  %-58s %7.1fs", p.name, p.took.Seconds())
	}
	e.logf("phases:%s\n  %-58s %7.1fs", b.String(), "total", time.Since(e.start).Seconds())
}

func (e *clusterEnv) kc(stdin string, args ...string) string {
	e.t.Helper()
	return run(e.t, stdin, e.kubectl, args...)
}

// ---- cluster, operator, first service ----

func (e *clusterEnv) up() {
	t := e.t
	tars := []string{filepath.Join(e.imageDir, "visionserve-amd64.tar"), filepath.Join(e.imageDir, "visionserve-operator-amd64.tar")}
	cmd := exec.Command(filepath.Join(e.root, "hack", "cluster.sh"), append([]string{"up"}, tars...)...)
	out, err := cmd.CombinedOutput()
	t.Cleanup(e.down)
	if err != nil {
		t.Fatalf("hack/cluster.sh up: %v\n%s", err, out)
	}
	e.logf("%s", strings.TrimSpace(string(out)))
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(e.state, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	ctrllog.SetLogger(logr.Discard()) // the test's own client; its log is noise here
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if e.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
}

func (e *clusterEnv) down() {
	if e.tl != nil {
		e.tl.stop()
	}
	if e.t.Failed() && e.kubectl != "" {
		out, _ := runErr("", e.kubectl, "get", "vsvc,deploy,pods,pdb,events", "-A", "-o", "wide")
		e.t.Logf("cluster state at failure:\n%s", out)
		logs, _ := runErr("", e.kubectl, "-n", "visionserve-system", "logs", "-l", "app.kubernetes.io/name=visionserve-operator", "--tail", "60")
		e.t.Logf("operator logs:\n%s", logs)
	}
	out, err := exec.Command(filepath.Join(e.root, "hack", "cluster.sh"), "down").CombinedOutput()
	if err != nil {
		e.t.Errorf("hack/cluster.sh down: %v\n%s", err, out)
	}
	e.logf("%s", strings.TrimSpace(string(out)))
}

func (e *clusterEnv) installOperator() {
	manifests := e.kc("", "kustomize", filepath.Join(e.root, "deploy", "operator"))
	manifests = strings.ReplaceAll(manifests, "ghcr.io/visionserve/visionserve-operator:v0.1.0", e.operatorImage())
	if !strings.Contains(manifests, e.operatorImage()) {
		e.t.Fatalf("deploy/operator does not name ghcr.io/visionserve/visionserve-operator:v0.1.0 any more")
	}
	e.kc(manifests, "apply", "--server-side", "-f", "-")
	e.kc("", "-n", "visionserve-system", "rollout", "status", "deploy/visionserve-operator", "--timeout=300s")
	e.logf("operator %s: 2 replicas ready (leader election)", e.operatorImage())
}

// firstService publishes the model repository on a hostPath volume, creates
// the VisionService with one replica and checks OCR and faces through its
// Service.
func (e *clusterEnv) firstService() {
	t := e.t
	home := filepath.Join(t.TempDir(), "repo")
	e.repo = bootstrap(t, []string{e.bin}, home, tessdata(t), testenv.Shared(t, "models/face"))
	chmodWorld(t, home)
	var err error
	if e.clientKey, e.clientHash, err = auth.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if e.adminKey, e.adminHash, err = auth.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	e.kc(fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadOnlyMany]
  storageClassName: e2e-hostpath
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: %[2]q, type: Directory}
  claimRef: {namespace: %[3]s, name: %[1]s}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %[1]s, namespace: %[3]s}
spec:
  storageClassName: e2e-hostpath
  accessModes: [ReadOnlyMany]
  resources: {requests: {storage: 1Gi}}
  volumeName: %[1]s
---
apiVersion: v1
kind: Secret
metadata: {name: e2e-admin, namespace: %[3]s}
stringData: {key: %[4]q}
`, claimName, e.repo.models, namespace, e.adminKey), "apply", "--server-side", "-f", "-")
	e.applyService(map[string]any{"replicas": 1})
	e.waitReady(1, 5*time.Minute)
	e.waitPhase(v1alpha1.PhaseRunning, 2*time.Minute)

	var svc corev1.Service
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: vsName}, &svc); err != nil {
		t.Fatal(err)
	}
	e.svcURL = "http://" + svc.Spec.ClusterIP + ":8080"
	e.logf("VisionService %s Running; Service %s", vsName, e.svcURL)
	client := &http.Client{Timeout: 5 * time.Minute}
	res := checkOCR(t, client, e.svcURL, e.clientKey, 0.02)
	if res.Model.Name != "ocr-eng" || res.Model.Version != "1" {
		t.Fatalf("OCR answered by %s/%s, want ocr-eng/1 from the model volume", res.Model.Name, res.Model.Version)
	}
	checkFaces(t, client, e.svcURL, e.clientKey)
	e.tl = startTimeline(e)
}

// applyService applies the VisionService with the given extra spec fields.
func (e *clusterEnv) applyService(extra map[string]any) {
	e.t.Helper()
	pub, err := os.ReadFile(e.repo.pubKey)
	if err != nil {
		e.t.Fatal(err)
	}
	config := fmt.Sprintf(`auth:
  api_keys:
    - {name: clients, hash: %q, scopes: [infer]}
    - {name: operator, hash: %q, scopes: ["models:admin"]}
repository:
  trust: {keys: [/etc/visionserve/signer.pem]}
  policies:
    ocr-eng: {latest: 2}
face:
  detector_model: face-detect
  embedder_model: face-embed
`, e.clientHash, e.adminHash)
	spec := map[string]any{
		"image":           e.image(),
		"imagePullPolicy": "IfNotPresent",
		"models":          map[string]any{"persistentVolumeClaim": map[string]any{"claimName": claimName}},
		"minReplicas":     1,
		"maxReplicas":     3,
		// small requests: three pods and a surge fit on a 2-core node
		"resources": map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "128Mi"}, "limits": map[string]any{"memory": "1Gi"}},
		"server": map[string]any{
			"workers":        1,
			"queue":          32,
			"adminKeySecret": map[string]any{"name": "e2e-admin", "key": "key"},
			"files":          map[string]any{"signer.pem": string(pub)},
			"config":         config,
		},
	}
	for k, v := range extra {
		spec[k] = v
	}
	obj := map[string]any{
		"apiVersion": "visionserve.io/v1alpha1", "kind": "VisionService",
		"metadata": map[string]any{"name": vsName, "namespace": namespace},
		"spec":     spec,
	}
	b, err := json.Marshal(obj)
	if err != nil {
		e.t.Fatal(err)
	}
	e.kc(string(b), "apply", "--server-side", "--force-conflicts", "--field-manager", "e2e", "-f", "-")
}

// patch merges fields into the VisionService's spec.
func (e *clusterEnv) patch(spec map[string]any) {
	e.t.Helper()
	b, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		e.t.Fatal(err)
	}
	e.kc("", "patch", "vsvc", vsName, "-n", namespace, "--type", "merge", "-p", string(b))
}

func (e *clusterEnv) vsvc() *v1alpha1.VisionService {
	var vs v1alpha1.VisionService
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: vsName}, &vs); err != nil {
		e.t.Fatal(err)
	}
	return &vs
}

// waitFor polls cond every second until it is true or timeout passes.
func (e *clusterEnv) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Second)
	}
}

// pods are the VisionService's pods that are not terminating.
func (e *clusterEnv) pods() (all, ready []corev1.Pod) {
	var list corev1.PodList
	if err := e.k8s.List(context.Background(), &list, client.InNamespace(namespace),
		client.MatchingLabels{"app.kubernetes.io/instance": vsName}); err != nil {
		e.t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		all = append(all, p)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = append(ready, p)
			}
		}
	}
	return all, ready
}

// waitReady waits until the Deployment has exactly n pods, all ready and of
// the current template.
func (e *clusterEnv) waitReady(n int, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d ready pods", n), timeout, func() bool {
		var d appsv1.Deployment
		if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: vsName}, &d); err != nil {
			return false
		}
		all, ready := e.pods()
		return len(all) == n && len(ready) == n && d.Status.UpdatedReplicas == int32(n) &&
			d.Status.ReadyReplicas == int32(n) && d.Status.Replicas == int32(n)
	})
}

func (e *clusterEnv) waitPhase(p v1alpha1.Phase, timeout time.Duration) {
	e.t.Helper()
	e.waitFor("phase "+string(p), timeout, func() bool { return e.vsvc().Status.Phase == p })
}

// ---- Helm ----

func (e *clusterEnv) helmRelease() {
	t := e.t
	helm := strings.TrimSpace(run(t, "", filepath.Join(e.root, "hack", "setup-tool.sh"), "helm"))
	repo, tag, _ := strings.Cut(e.image(), ":")
	// Jobs in the pod, sealed at rest under a KEK from a Secret: the
	// kubelet mounts its one key where the server user can read it.
	kek, err := keys.NewKEK(keys.AES256GCM)
	if err != nil {
		t.Fatal(err)
	}
	e.kc(fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: e2e-kek, namespace: %s}\nstringData: {kek: %q}\n", namespace, kek),
		"apply", "--server-side", "-f", "-")
	out := run(t, "", helm, "install", "chart", filepath.Join(e.root, "deploy", "helm", "visionserve"),
		"--namespace", namespace, "--wait", "--timeout", "5m",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag,
		"--set", "replicaCount=1", "--set", "auth.apiKeys[0].name=clients",
		"--set", "auth.apiKeys[0].hash="+e.clientHash, "--set", "auth.apiKeys[0].scopes={infer}",
		"--set", "jobs.store=embedded",
		"--set", "encryption.enabled=true", "--set", "encryption.kekSecret.name=e2e-kek",
		"--set", "resources.requests.cpu=50m", "--set", "resources.requests.memory=128Mi")
	e.logf("helm install: %s", firstLine(out))
	svc := e.kc("", "get", "svc", "-n", namespace, "-l", "app.kubernetes.io/instance=chart", "-o", "jsonpath={.items[0].spec.clusterIP}")
	client := &http.Client{Timeout: 5 * time.Minute}
	res := checkOCR(t, client, "http://"+svc+":8080", e.clientKey, 0.02)
	e.logf("the chart's release answers (built-in model %s/%s)", res.Model.Name, res.Model.Version)
	checkPDFJob(t, client, "http://"+svc+":8080", e.clientKey, 0.02)
	logs := e.kc("", "logs", "-n", namespace, "-l", "app.kubernetes.io/instance=chart", "--tail", "-1")
	if !strings.Contains(logs, "encryption at rest") {
		t.Errorf("the release's server did not log encryption at rest:\n%.2000s", logs)
	}
	e.logf("the release seals its jobs under the KEK of Secret e2e-kek and read a PDF job")
	e.logf("helm uninstall: %s", firstLine(run(t, "", helm, "uninstall", "chart", "--namespace", namespace, "--wait")))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// ---- load ----

// load is one `visionserve bench` process.
type load struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	done   chan error
}

// startLoad starts bench against the VisionService's OCR route: an open
// loop at rate (requests/s), or a closed loop of concurrency clients when
// rate is 0. It runs until stopped.
func (e *clusterEnv) startLoad(data string, rate float64, concurrency int) *load {
	e.t.Helper()
	args := []string{"bench", "--url", e.svcURL + "/v1/ocr", "--data", data, "--duration", "30m",
		"--concurrency", strconv.Itoa(concurrency), "--timeout", "2m", "--json", "--quiet",
		"-H", "Authorization: Bearer " + e.clientKey}
	if rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(rate, 'f', -1, 64))
	}
	l := &load{cmd: exec.Command(e.bin, args...), done: make(chan error, 1)}
	l.cmd.Stdout = &l.stdout
	l.cmd.Stderr = os.Stderr
	if err := l.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { l.done <- l.cmd.Wait() }()
	e.t.Cleanup(func() { _ = l.cmd.Process.Kill() })
	return l
}

// stop interrupts bench (it finishes the requests in flight) and returns
// its report.
func (l *load) stop(t *testing.T) *bench.Report {
	t.Helper()
	_ = l.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-l.done:
	case <-time.After(3 * time.Minute):
		_ = l.cmd.Process.Kill()
		t.Fatal("bench did not stop within 3 minutes of SIGINT")
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(l.stdout.String()), &rep); err != nil {
		t.Fatalf("bench report: %v: %q", err, l.stdout.String())
	}
	return &rep
}

func describe(rep *bench.Report) string {
	codes := make([]string, 0, len(rep.Status))
	for c, n := range rep.Status {
		codes = append(codes, fmt.Sprintf("%s=%d", c, n))
	}
	slices.Sort(codes)
	s := fmt.Sprintf("%d requests in %.0fs (%s), p50 %.0f ms, p99 %.0f ms", rep.Requests, rep.Duration,
		strings.Join(codes, " "), rep.Latency.P50, rep.Latency.P99)
	if rep.Confidence != nil {
		s += fmt.Sprintf(", mean confidence %.3f", rep.Confidence.Mean)
	}
	for msg, n := range rep.Errors {
		s += fmt.Sprintf("; %d× %s", n, msg)
	}
	return s
}

// failed is the number of requests that did not get a 200.
func failed(rep *bench.Report) int { return rep.Requests - rep.Status["200"] }

// linesDir is a directory of text-line images (fast, high confidence).
func linesDir(t *testing.T) string { return testenv.Shared(t, "data/ocr/lines/book") }

// wordsDir is a directory of photographed single words: fast to read, and
// Tesseract is unsure of most of them (mean confidence about 0.6, against
// about 0.95 for the text lines). The photographed pages are as unsure but
// take seconds each, too few per window on 2 cores for the confidence
// signal (which needs 20 predictions a window).
func wordsDir(t *testing.T) string { return testenv.Shared(t, "data/ocr/words") }

// ---- the replica counts over time ----

type sample struct {
	at                      time.Duration
	phase                   string
	desired, ready, running int32
	qps, conf               float64
	reason                  string
}

type timeline struct {
	e       *clusterEnv
	mu      sync.Mutex
	phase   string
	samples []sample
	quit    chan struct{}
	done    chan struct{}
}

func startTimeline(e *clusterEnv) *timeline {
	tl := &timeline{e: e, quit: make(chan struct{}), done: make(chan struct{})}
	go tl.loop()
	return tl
}

func (tl *timeline) loop() {
	defer close(tl.done)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		var vs v1alpha1.VisionService
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tl.e.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: vsName}, &vs)
		cancel()
		if err == nil {
			s := sample{at: time.Since(tl.e.start), desired: vs.Status.DesiredReplicas,
				ready: vs.Status.ReadyReplicas, running: vs.Status.Replicas, reason: vs.Status.LastScaleReason}
			if vs.Status.ObservedQPS != nil {
				s.qps = *vs.Status.ObservedQPS
			}
			if vs.Status.ObservedConfidence != nil {
				s.conf = *vs.Status.ObservedConfidence
			}
			tl.mu.Lock()
			s.phase = tl.phase
			tl.samples = append(tl.samples, s)
			tl.mu.Unlock()
		}
		select {
		case <-tl.quit:
			return
		case <-tick.C:
		}
	}
}

func (tl *timeline) stop() {
	select {
	case <-tl.quit:
	default:
		close(tl.quit)
		<-tl.done
	}
}

// mark names the samples that follow.
func (tl *timeline) mark(phase string) {
	tl.mu.Lock()
	tl.phase = phase
	tl.mu.Unlock()
}

// since returns the samples of the phases named.
func (tl *timeline) of(phases ...string) []sample {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []sample
	for _, s := range tl.samples {
		if slices.Contains(phases, s.phase) {
			out = append(out, s)
		}
	}
	return out
}

// print logs the samples where something changed.
func (tl *timeline) print(title string, samples []sample) {
	var b strings.Builder
	fmt.Fprintf(&b, "replicas over time (%s):\n  %8s  %-10s %7s %5s %7s %7s %6s  %s", title, "t", "load", "desired", "ready", "pods", "qps", "conf", "last decision")
	var last sample
	for i, s := range samples {
		if i > 0 && i < len(samples)-1 && s.desired == last.desired && s.ready == last.ready && s.running == last.running && s.phase == last.phase && s.reason == last.reason {
			continue
		}
		decision, _, _ := strings.Cut(s.reason, ":")
		fmt.Fprintf(&b, "\n  %7.1fs  %-10s %7d %5d %7d %7.2f %6.3f  %s", s.at.Seconds(), s.phase, s.desired, s.ready, s.running, s.qps, s.conf, decision)
		last = s
	}
	tl.e.logf("%s", b.String())
}

// checkNoFlap fails if the desired count flapped: fell while the load ran,
// or rose again once it had started to fall (a decision made on the last
// loaded window may still raise it just after the load ends). It returns the
// peak.
func (tl *timeline) checkNoFlap(t *testing.T, loaded, after string) int32 {
	t.Helper()
	var peak int32
	prev, fell := int32(-1), false
	for _, s := range tl.of(loaded, after) {
		switch {
		case prev < 0:
		case s.desired < prev && s.phase == loaded:
			t.Errorf("flap: desired replicas fell %d -> %d at %.1fs while the load ran", prev, s.desired, s.at.Seconds())
		case s.desired < prev:
			fell = true
		case s.desired > prev && fell:
			t.Errorf("flap: desired replicas rose %d -> %d at %.1fs after they had started to fall", prev, s.desired, s.at.Seconds())
		}
		prev, peak = s.desired, max(peak, s.desired)
	}
	return peak
}

// ---- scaling ----

func (e *clusterEnv) autoscaling(spec map[string]any) {
	base := map[string]any{"interval": "5s", "window": "20s", "scaleDownStabilization": "20s", "ewmaAlpha": 0.6}
	for k, v := range spec {
		base[k] = v
	}
	e.patch(map[string]any{"replicas": nil, "minReplicas": 1, "maxReplicas": 3, "autoscaling": base})
}

func (e *clusterEnv) scaleOnQPS() {
	t := e.t
	e.autoscaling(map[string]any{"qpsPerReplica": 1.0, "confidenceFloor": nil})
	e.tl.mark("qps-load")
	l := e.startLoad(linesDir(t), 3, 16)
	e.waitFor("3 ready replicas under 3 req/s (qpsPerReplica 1)", 4*time.Minute, func() bool {
		_, ready := e.pods()
		return len(ready) == 3
	})
	time.Sleep(10 * time.Second) // hold the load: no scale-down while it runs
	rep := l.stop(t)
	e.logf("load: %s", describe(rep))
	e.tl.mark("qps-after")
	e.waitReady(1, 4*time.Minute)
	time.Sleep(10 * time.Second) // and it stays down
	e.tl.mark("")
	samples := e.tl.of("qps-load", "qps-after")
	e.tl.print("QPS", samples)
	peak := e.tl.checkNoFlap(t, "qps-load", "qps-after")
	if peak != 3 {
		t.Errorf("peak desired replicas %d, want 3", peak)
	}
	e.logf("last decision: %s", e.vsvc().Status.LastScaleReason)
}

func (e *clusterEnv) scaleOnConfidence() {
	t := e.t
	// QPS alone asks for one replica at this load; the floor sits between
	// the photographed words' confidence and the text lines'.
	e.autoscaling(map[string]any{"qpsPerReplica": 200.0, "confidenceFloor": confidenceFloor})
	e.tl.mark("conf-load")
	l := e.startLoad(wordsDir(t), 0, 3)
	var reason string
	e.waitFor("a scale-up on confidence", 5*time.Minute, func() bool {
		vs := e.vsvc()
		reason = vs.Status.LastScaleReason
		return vs.Status.DesiredReplicas >= 2 && strings.Contains(reason, "ScaleUpConfidence")
	})
	e.logf("scaled on confidence: %s", reason)
	e.waitFor("2 ready replicas", 3*time.Minute, func() bool { _, ready := e.pods(); return len(ready) >= 2 })
	rep := l.stop(t)
	e.logf("load: %s", describe(rep))
	e.tl.mark("conf-after")
	e.waitReady(1, 4*time.Minute)
	time.Sleep(10 * time.Second)
	e.tl.mark("")
	e.tl.print("confidence", e.tl.of("conf-load", "conf-after"))
	e.tl.checkNoFlap(t, "conf-load", "conf-after")
	// back to a fixed pair for what follows: a PDB with two pods is the
	// interesting case for the kill and the drain
	e.patch(map[string]any{"autoscaling": nil, "replicas": 2})
	e.waitReady(2, 4*time.Minute)
}

// confidenceFloor lies between the mean confidence of the photographed words
// (about 0.6) and of the text lines (about 0.95) with this image's Tesseract.
const confidenceFloor = 0.8

// ---- rollout and canaries ----

func (e *clusterEnv) rollingUpdate() {
	t := e.t
	// a new image: the same files under a new tag with a new label
	next := "localhost/visionserve:" + e.tag + "-rollout"
	c := strings.TrimSpace(run(t, "", "buildah", "from", "--pull=never", e.image()))
	run(t, "", "buildah", "config", "--label", "io.visionserve.e2e=rollout", c)
	run(t, "", "buildah", "commit", "--quiet", "--format", "docker", "--rm", c, next)
	tar := filepath.Join(t.TempDir(), "rollout.tar")
	run(t, "", "buildah", "push", "--quiet", next, "docker-archive:"+tar+":"+next)
	run(t, "", filepath.Join(e.root, "hack", "cluster.sh"), "load", tar)
	t.Cleanup(func() { _, _ = runErr("", "buildah", "rmi", next) })

	l := e.startLoad(linesDir(t), 2, 8)
	time.Sleep(5 * time.Second)
	e.patch(map[string]any{"image": next})
	e.kc("", "-n", namespace, "rollout", "status", "deploy/"+vsName, "--timeout=5m")
	e.waitReady(2, 3*time.Minute)
	time.Sleep(5 * time.Second)
	e.noFailures("the rollout to "+next, l.stop(t))
	for _, p := range must(e.pods()) {
		if p.Spec.Containers[0].Image != next {
			t.Errorf("pod %s runs %s after the rollout", p.Name, p.Spec.Containers[0].Image)
		}
	}
}

func must(all, _ []corev1.Pod) []corev1.Pod { return all }

// publish copies ocr-eng 1's files into a new signed version with the given
// runtime options, in the repository the pods mount.
func (e *clusterEnv) publish(version int, runtimeJSON string) {
	t := e.t
	v := strconv.Itoa(version)
	dir := filepath.Join(e.repo.models, "ocr-eng", ".incoming-"+v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"eng.traineddata", "osd.traineddata"} {
		b, err := os.ReadFile(filepath.Join(e.repo.models, "ocr-eng", "1", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "", e.bin, "model", "pack", "--name", "ocr-eng", "--version", v, "--kind", "ocr-tesseract", "--runtime", runtimeJSON, dir)
	run(t, "", e.bin, "model", "sign", "--key", filepath.Join(e.repo.home, "keys", "private.pem"), dir)
	chmodWorld(t, dir)
	if err := os.Rename(dir, filepath.Join(e.repo.models, "ocr-eng", v)); err != nil {
		t.Fatal(err)
	}
	e.logf("published ocr-eng %s (runtime %s) in the model volume", v, runtimeJSON)
}

func (e *clusterEnv) canaryStatus() *v1alpha1.CanaryStatus {
	c := e.vsvc().Status.Canary
	if c == nil {
		return &v1alpha1.CanaryStatus{}
	}
	return c
}

// versionsServed sends n requests and counts the answering versions.
func (e *clusterEnv) versionsServed(n int) map[string]int {
	t := e.t
	img, _ := os.ReadFile(filepath.Join(linesDir(t), "0005", "010001.bin.png"))
	client := &http.Client{Timeout: 2 * time.Minute}
	got := map[string]int{}
	for range n {
		code, body, err := post(context.Background(), client, e.svcURL+"/v1/ocr", "image/png", e.clientKey, img)
		if err != nil || code != http.StatusOK {
			t.Fatalf("OCR: %d %v %.200s", code, err, body)
		}
		var res ocrResult
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		got[res.Model.Version]++
	}
	return got
}

func (e *clusterEnv) goodCanary() {
	// The autoscaler's loop (interval, window) also drives the canary.
	e.patch(map[string]any{"autoscaling": map[string]any{"qpsPerReplica": 50.0, "interval": "5s", "window": "30s",
		"scaleDownStabilization": "20s"}, "replicas": nil, "minReplicas": 2, "maxReplicas": 3})
	e.runCanary(1, 2, `{"lang": "eng"}`, v1alpha1.CanaryPromoted)
}

func (e *clusterEnv) badCanary() {
	// the same Tesseract model, calibrated to report at most 0.45: a version
	// whose predictions the operator must judge worse than the stable one's
	st := e.runCanary(2, 3, `{"lang": "eng", "calibration": [[0, 0], [1, 0.45]]}`, v1alpha1.CanaryRolledBack)
	if st.Reason != "ConfidenceBelowStable" {
		e.t.Errorf("rolled back for %s, want ConfidenceBelowStable", st.Reason)
	}
	events := e.kc("", "get", "events", "-n", namespace, "--field-selector", "reason=CanaryRolledBack", "-o", "jsonpath={.items[*].message}")
	e.logf("event CanaryRolledBack: %s", events)
	// Version 3 stays in the model volume, the newest there: the verdict
	// must keep it out of traffic on the pods that start from now on (the
	// kill and the drain next), with spec.canary gone.
	e.logf("traffic ConfigMap: %s", e.kc("", "get", "configmap", vsName+"-traffic", "-n", namespace, "-o", "jsonpath={.data.traffic\\.json}"))
}

// runCanary, under load: sets spec.canary for version at 10% first (so it
// gets its share from the moment it is ready, never everything), then
// publishes version with runtime options, waits for the operator's verdict
// (failing on the other one), and checks that no request failed and that
// afterwards the winner answers everything.
func (e *clusterEnv) runCanary(stable, version int, runtimeJSON string, verdict v1alpha1.CanaryPhase) *v1alpha1.CanaryStatus {
	t := e.t
	l := e.startLoad(linesDir(t), 3, 8)
	e.patch(map[string]any{"canary": map[string]any{
		"model": "ocr-eng", "stableVersion": stable, "version": version, "weight": 10,
		"confidenceMargin": 0.05, "analysis": "40s", "minSamples": 5,
	}})
	e.waitFor("the canary's weights on the pods", 2*time.Minute, func() bool {
		st := e.canaryStatus()
		return st.Version == int32(version) && st.Phase == v1alpha1.CanaryProgressing
	})
	e.publish(version, runtimeJSON)
	var st *v1alpha1.CanaryStatus
	e.waitFor("the canary's verdict", 5*time.Minute, func() bool {
		st = e.canaryStatus()
		if st.Phase != v1alpha1.CanaryProgressing && st.Phase != verdict {
			t.Fatalf("canary ocr-eng %d: %s, want %s: %s: %s", version, st.Phase, verdict, st.Reason, st.Message)
		}
		return st.Phase == verdict
	})
	e.logf("canary ocr-eng %d: %s (%s): %s", version, st.Phase, st.Reason, st.Message)
	e.noFailures(fmt.Sprintf("the canary of version %d", version), l.stop(t))
	winner := strconv.Itoa(version)
	if verdict == v1alpha1.CanaryRolledBack {
		winner = strconv.Itoa(stable)
	}
	served := e.versionsServed(10)
	e.logf("then 10 requests answered by versions %v", served)
	if served[winner] != 10 {
		t.Errorf("after the canary of %d (%s) versions %v answered, want all %s", version, verdict, served, winner)
	}
	return st
}

// noFailures logs a load's report and fails unless every request got a 200.
func (e *clusterEnv) noFailures(what string, rep *bench.Report) {
	e.t.Helper()
	e.logf("load during %s: %s", what, describe(rep))
	if failed(rep) != 0 || rep.Requests == 0 {
		e.t.Errorf("%s: %d of %d requests failed, want 0", what, failed(rep), rep.Requests)
	}
}

// ---- disruption ----

// retryable reports whether a failed request is one a client may retry: a
// 503 from a draining server, or a connection the killed pod dropped before
// any answer (what gRPC reports as UNAVAILABLE).
func retryable(rep *bench.Report) (ok bool, bad []string) {
	for code, n := range rep.Status {
		switch code {
		case "200", "503":
		case "transport":
			for msg, m := range rep.Errors {
				if !isConnectionLoss(msg) {
					bad = append(bad, fmt.Sprintf("%d× %s", m, msg))
				}
			}
		default:
			bad = append(bad, fmt.Sprintf("%d× HTTP %s", n, code))
		}
	}
	return len(bad) == 0, bad
}

func isConnectionLoss(msg string) bool {
	for _, s := range []string{"connection reset", "connection refused", "EOF", "broken pipe", "no route to host"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (e *clusterEnv) killPod() {
	t := e.t
	e.patch(map[string]any{"canary": nil, "autoscaling": nil, "replicas": 2})
	e.waitReady(2, 3*time.Minute)
	l := e.startLoad(linesDir(t), 3, 8)
	time.Sleep(5 * time.Second)
	_, ready := e.pods()
	victim, survivor := ready[0].Name, ready[1].Name
	e.kc("", "delete", "pod", victim, "-n", namespace, "--force", "--grace-period=0")
	e.logf("force-deleted pod %s under load", victim)
	start := time.Now()
	e.waitReady(2, 3*time.Minute)
	e.logf("Deployment back to 2 ready pods %s after the kill", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second)
	rep := l.stop(t)
	e.logf("load during the kill: %s", describe(rep))
	if ok, bad := retryable(rep); !ok {
		t.Errorf("requests failed in ways a client may not retry: %v", bad)
	}
	if served := e.versionsServed(10); served["2"] != 10 {
		t.Errorf("after the kill versions %v answered, want all 2", served)
	}
	// The replacement started on the verdict, read from the traffic
	// ConfigMap before its first request, not when the operator reached it.
	_, ready = e.pods()
	for _, p := range ready {
		if p.Name == survivor {
			continue
		}
		logs := e.kc("", "logs", p.Name, "-n", namespace)
		if !strings.Contains(logs, "traffic weights from the traffic file") || !strings.Contains(logs, "map[2:100]") {
			t.Errorf("pod %s, the replacement, did not start on the verdict's weights {2: 100}:\n%s", p.Name, grepLines(logs, "traffic"))
		}
		e.logf("pod %s, the replacement, started on the traffic file: %s", p.Name, grepLines(logs, "traffic file"))
	}
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (e *clusterEnv) drain() {
	t := e.t
	l := e.startLoad(linesDir(t), 2, 8)
	all, _ := e.pods()
	before := map[string]bool{}
	for _, p := range all {
		before[p.Name] = true
	}
	// One node: an evicted pod's replacement cannot be scheduled while the
	// node is cordoned, so the PDB (maxUnavailable 1) must refuse the second
	// eviction and keep one pod serving.
	out, err := runErr("", e.kubectl, "drain", "node1", "--pod-selector", "app.kubernetes.io/instance="+vsName,
		"--delete-emptydir-data", "--ignore-daemonsets", "--timeout", "45s")
	t.Cleanup(func() { _, _ = runErr("", e.kubectl, "uncordon", "node1") })
	if err == nil {
		t.Fatalf("kubectl drain evicted every pod despite the PodDisruptionBudget:\n%s", out)
	}
	e.logf("kubectl drain stopped by the PDB: %s", lastLine(err.Error()))
	_, ready := e.pods()
	survivors := 0
	for _, p := range ready {
		if before[p.Name] {
			survivors++
		}
	}
	if survivors != 1 {
		t.Errorf("%d of the original pods still ready during the drain, want exactly 1 (maxUnavailable 1)", survivors)
	}
	e.kc("", "uncordon", "node1")
	e.waitReady(2, 3*time.Minute)
	rep := l.stop(t)
	e.logf("load during the drain: %s", describe(rep))
	if ok, bad := retryable(rep); !ok {
		t.Errorf("requests failed in ways a client may not retry during the drain: %v", bad)
	}
	if served := e.versionsServed(10); served["2"] != 10 {
		t.Errorf("after the drain versions %v answered, want all 2", served)
	}
	e.kc("", "delete", "vsvc", vsName, "-n", namespace, "--wait=true", "--timeout=2m")
	e.waitFor("the VisionService's pods gone", 2*time.Minute, func() bool { all, _ := e.pods(); return len(all) == 0 })
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
