// Package deploy_test checks what deploy/ ships without a container engine
// or a cluster: the Helm chart is rendered with Helm's Go library, the
// operator's kustomization is built with kustomize's Go API, and every
// resulting object is applied with server-side dry-run to a real
// kube-apiserver (envtest), so the API server's own validation judges
// them. The Dockerfile is checked statically; the Grafana dashboard and
// alert rules against the server's metric names.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/controller/controltest"
	"github.com/visionserve/visionserve/internal/metrics"
)

var (
	cfg      *rest.Config
	k8s      client.Client
	startErr error
)

func TestMain(m *testing.M) {
	code := func() int {
		c, stop, err := controltest.Start()
		if err != nil {
			startErr = err
			return m.Run()
		}
		defer stop()
		cfg = c
		k8s, err = client.New(cfg, client.Options{})
		if err != nil {
			panic(err)
		}
		return m.Run()
	}()
	os.Exit(code)
}

func apiServer(t *testing.T) context.Context {
	t.Helper()
	controltest.Require(t, startErr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// splitYAML splits a multi-document manifest into objects, skipping empty
// documents.
func splitYAML(t *testing.T, source string, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if len(doc) == 0 {
			continue
		}
		// Round-trip through JSON so the values have the types
		// apimachinery expects (int64, not int).
		js, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		out = append(out, u)
	}
	return out
}

// dryRunApply applies every object with server-side dry-run. Namespaces
// are created for real first (a dry-run namespace does not exist for the
// objects in it).
func dryRunApply(t *testing.T, ctx context.Context, namespace string, objs []*unstructured.Unstructured) {
	t.Helper()
	ensureNamespace(t, ctx, namespace)
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ensureNamespace(t, ctx, o.GetName())
		}
	}
	for _, o := range objs {
		if o.GetNamespace() == "" && namespaced(t, o) {
			o.SetNamespace(namespace)
		}
		err := k8s.Patch(ctx, o, client.Apply, client.DryRunAll, client.FieldOwner("deploy-test"), client.ForceOwnership)
		if err != nil {
			t.Errorf("%s %s/%s refused by the API server: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func ensureNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

var discoveryCache = map[string]bool{}

// namespaced asks the API server whether an object's kind is namespaced.
func namespaced(t *testing.T, o *unstructured.Unstructured) bool {
	t.Helper()
	gvk := o.GroupVersionKind()
	key := gvk.String()
	if v, ok := discoveryCache[key]; ok {
		return v
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion(gvk.GroupVersion().String())
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			discoveryCache[key] = r.Namespaced
			return r.Namespaced
		}
	}
	t.Fatalf("the API server does not serve %s", key)
	return false
}

// TestHelmChart lints the chart, renders it with several sets of values and
// applies the result to the API server (server-side dry-run).
func TestHelmChart(t *testing.T) {
	ctx := apiServer(t)
	chartDir := filepath.Join("helm", "visionserve")
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	lintResult := lint.All(chartDir, map[string]any{"auth": map[string]any{"disabled": true}}, "default", false)
	for _, m := range lintResult.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, "monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor")
	const keys = `auth: {apiKeys: [{name: clients, hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", scopes: [infer]}]}`
	cases := []struct {
		name    string
		values  string
		want    []string // kinds
		wantErr string   // rendering fails with this
		args    []string // the server's arguments include these
	}{
		{"defaults", ``, nil, "visionserve refuses to start without credentials", nil},
		{"api keys", keys, []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}, "", nil},
		{"everything", keys + `
server:
  config: "server:\n  queue: 8\nauth:\n  api_keys: [{name: ops, hash: 'sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752', scopes: ['models:admin']}]\nrepository:\n  trust: {keys: [/etc/visionserve/signer.pem]}\n"
  files: {signer.pem: "-----BEGIN PUBLIC KEY-----\n"}
  workers: 2
  extraArgs: [--log-format, json]
  env: [{name: GOGC, value: "200"}]
models: {existingClaim: ocr-models}
serviceMonitor: {enabled: true, labels: {release: prometheus}}
podAnnotations: {example.com/team: vision}
nodeSelector: {kubernetes.io/arch: amd64}
tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
`, []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"}, "", nil},
		{"no PDB no auth", `{podDisruptionBudget: {enabled: false}, auth: {disabled: true}}`, []string{"Deployment", "Service"}, "", nil},
		{"bad config", keys + "\nserver: {config: \"[unclosed\"}", nil, "server.config is not YAML", nil},
		{"jobs embedded", keys + "\nreplicaCount: 1\njobs: {store: embedded, embedded: {existingClaim: ocr-jobs}}",
			[]string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}, "", []string{"--jobs-store", "embedded", "--jobs-dir"}},
		{"jobs embedded on two replicas", keys + "\njobs: {store: embedded}", nil, "jobs.store embedded keeps jobs in one pod's database", nil},
		{"jobs postgres", keys + "\nreplicaCount: 3\njobs: {store: postgres, postgres: {secretName: jobs-db}}",
			[]string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}, "", []string{"--jobs-store", "postgres", "--jobs-postgres-file"}},
		{"jobs postgres without a Secret", keys + "\njobs: {store: postgres}", nil, "jobs.postgres.secretName", nil},
		{"jobs off", keys + "\njobs: {store: off}", []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}, "", nil},
		{"encryption", keys + "\nencryption: {enabled: true, algorithm: sm4-gcm, kekSecret: {name: visionserve-kek}}",
			[]string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}, "", []string{"--kek-file", "/var/run/visionserve/kek/kek", "--encryption-algorithm", "sm4-gcm"}},
		{"encryption without a Secret", keys + "\nencryption: {enabled: true}", nil, "encryption.enabled needs encryption.kekSecret.name", nil},
		{"encryption with an unknown algorithm", keys + "\nencryption: {enabled: true, algorithm: des, kekSecret: {name: k}}", nil, `encryption.algorithm "des"`, nil},
		{"encryption twice", keys + "\nencryption: {enabled: true, kekSecret: {name: k}}\nserver: {config: \"encryption: {kek_env: VISIONSERVE_KEK}\\n\"}",
			nil, "server.config has an encryption section and encryption.enabled is set", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var vals map[string]any
			if err := yaml.Unmarshal([]byte(tc.values), &vals); err != nil {
				t.Fatal(err)
			}
			ns := "helm-" + strings.ToLower(strings.ReplaceAll(tc.name, " ", "-"))
			values, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "ocr", Namespace: ns, IsInstall: true}, caps)
			if err != nil {
				t.Fatal(err)
			}
			out, err := engine.Render(ch, values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("rendering: %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var objs []*unstructured.Unstructured
			var files []string
			for f := range out {
				files = append(files, f)
			}
			sort.Strings(files)
			for _, f := range files {
				if strings.HasSuffix(f, ".yaml") {
					objs = append(objs, splitYAML(t, f, []byte(out[f]))...)
				}
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind())
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tc.want) {
				t.Fatalf("rendered %v, want %v", kinds, tc.want)
			}
			for _, o := range objs {
				switch o.GetKind() {
				case "Deployment":
					checkServerPod(t, o)
					c, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
					args, _, _ := unstructured.NestedStringSlice(c[0].(map[string]any), "args")
					for _, a := range tc.args {
						if !slices.Contains(args, a) {
							t.Errorf("the server's args %v lack %s", args, a)
						}
					}
				case "ConfigMap":
					cfg, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
					var parsed struct {
						Auth struct {
							APIKeys []map[string]any `yaml:"api_keys"`
						} `yaml:"auth"`
					}
					if err := yaml.Unmarshal([]byte(cfg), &parsed); err != nil {
						t.Fatalf("config.yaml: %v\n%s", err, cfg)
					}
					if len(parsed.Auth.APIKeys) == 0 {
						t.Errorf("config.yaml has no api_keys:\n%s", cfg)
					}
					checkServerConfig(t, "the chart's config.yaml", cfg)
				}
			}
			dryRunApply(t, ctx, ns, objs)
		})
	}
}

// checkServerPod: what the server needs, whatever the values.
func checkServerPod(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	c, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if len(c) != 1 {
		t.Fatalf("containers %v", c)
	}
	ctr := c[0].(map[string]any)
	if ro, _, _ := unstructured.NestedBool(ctr, "securityContext", "readOnlyRootFilesystem"); !ro {
		t.Error("the root filesystem is not read-only")
	}
	if p, _, _ := unstructured.NestedString(ctr, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness probe %q", p)
	}
	if s, _, _ := unstructured.NestedInt64(ctr, "lifecycle", "preStop", "sleep", "seconds"); s < 1 {
		t.Error("no preStop sleep: a terminating pod must keep serving while its endpoint leaves the Service")
	}
	mounts, _, _ := unstructured.NestedSlice(ctr, "volumeMounts")
	stateMounted := false
	for _, m := range mounts {
		mm := m.(map[string]any)
		if mm["mountPath"] == "/models" && mm["readOnly"] != true {
			t.Error("models are not mounted read-only")
		}
		stateMounted = stateMounted || (mm["name"] == "state" && mm["mountPath"] == "/var/lib/visionserve/state" && mm["readOnly"] != true)
	}
	// With a models volume, the isolated check's failure memory needs a
	// writable directory beside it.
	args, _, _ := unstructured.NestedStringSlice(ctr, "args")
	checkKEKMount(t, o, args, mounts)
	if i := slices.Index(args, "--state-dir"); slices.Contains(args, "--models") && (!stateMounted || i < 0 || i+1 >= len(args) || args[i+1] != "/var/lib/visionserve/state") {
		t.Errorf("state dir: mounted writable %v, args %q: want --state-dir /var/lib/visionserve/state on a writable volume", stateMounted, args)
	}
}

// checkKEKMount: a --kek-file is one key of a Secret, mounted read-only,
// and the pod template names the Secret (a new one rolls the pods).
func checkKEKMount(t *testing.T, o *unstructured.Unstructured, args []string, mounts []any) {
	t.Helper()
	i := slices.Index(args, "--kek-file")
	if i < 0 {
		return
	}
	dir, file := filepath.Split(args[i+1])
	var volume string
	for _, m := range mounts {
		mm := m.(map[string]any)
		if mm["mountPath"] == strings.TrimSuffix(dir, "/") {
			volume, _ = mm["name"].(string)
			if mm["readOnly"] != true {
				t.Errorf("the KEK's volume is not mounted read-only: %v", mm)
			}
		}
	}
	volumes, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
	var secret string
	for _, v := range volumes {
		vv := v.(map[string]any)
		if vv["name"] != volume {
			continue
		}
		secret, _, _ = unstructured.NestedString(vv, "secret", "secretName")
		items, _, _ := unstructured.NestedSlice(vv, "secret", "items")
		if len(items) != 1 || items[0].(map[string]any)["path"] != file {
			t.Errorf("the KEK's volume %v: want one item at %s", vv, file)
		}
	}
	if secret == "" {
		t.Fatalf("--kek-file %s is not on a Secret's volume (mounts %v)", args[i+1], mounts)
	}
	if a, _, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", "visionserve.io/kek-secret"); !strings.HasPrefix(a, secret+"/") {
		t.Errorf("the pod template's visionserve.io/kek-secret is %q, want it to name Secret %s", a, secret)
	}
}

// TestOperatorKustomization builds deploy/operator as `kubectl apply -k`
// would and applies every object (CRD, RBAC, the manager), then the sample.
func TestOperatorKustomization(t *testing.T) {
	ctx := apiServer(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), "operator")
	if err != nil {
		t.Fatal(err)
	}
	data, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs := splitYAML(t, "deploy/operator", data)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
		if o.GetKind() == "Deployment" {
			img, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			if got := img[0].(map[string]any)["image"]; got != "ghcr.io/visionserve/visionserve-operator:v0.1.0" {
				t.Errorf("manager image %v", got)
			}
			if o.GetNamespace() != "visionserve-system" {
				t.Errorf("manager namespace %q", o.GetNamespace())
			}
		}
	}
	for _, want := range []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "Namespace", "Deployment"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %s in the kustomization (%v)", want, kinds)
		}
	}
	dryRunApply(t, ctx, "visionserve-system", objs)

	sample, err := os.ReadFile(filepath.Join("operator", "samples", "visionservice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs = splitYAML(t, "sample", sample)
	dryRunApply(t, ctx, "samples", objs)
	for _, o := range objs {
		cfg, _, _ := unstructured.NestedString(o.Object, "spec", "server", "config")
		checkServerConfig(t, "the sample's spec.server.config", cfg)
	}
}

// placeholderHash is how the sample marks the hashes a user fills in.
var placeholderHash = regexp.MustCompile(`sha256:REPLACE-[A-Z-]+`)

// checkServerConfig parses a configuration the way `visionserve serve
// --config` does (strict: an unknown or misplaced key fails), with the
// sample's placeholder hashes replaced by well-formed ones.
func checkServerConfig(t *testing.T, what, cfg string) {
	t.Helper()
	if cfg == "" {
		t.Fatalf("%s is empty", what)
	}
	cfg = placeholderHash.ReplaceAllString(cfg, "sha256:"+strings.Repeat("ab", 32))
	if _, err := config.Parse([]byte(cfg)); err != nil {
		t.Errorf("%s is not a valid server configuration: %v\n%s", what, err, cfg)
	}
}

// TestGeneratedRBACCoversTheOperator: the ClusterRole lets the operator do
// what it does (a forgotten marker would only show in a real cluster).
func TestGeneratedRBACCoversTheOperator(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("operator", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role struct {
		Rules []struct {
			APIGroups []string `json:"apiGroups"`
			Resources []string `json:"resources"`
			Verbs     []string `json:"verbs"`
		} `json:"rules"`
	}
	if err := sigsyaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	allowed := func(group, resource, verb string) bool {
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, need := range [][3]string{
		{"visionserve.io", "visionservices", "watch"}, {"visionserve.io", "visionservices/status", "patch"},
		{"apps", "deployments", "patch"}, {"apps", "deployments", "delete"}, {"", "services", "patch"},
		{"", "configmaps", "delete"}, {"", "persistentvolumeclaims", "patch"}, {"", "pods", "list"},
		{"", "events", "create"}, {"policy", "poddisruptionbudgets", "patch"}, {"monitoring.coreos.com", "servicemonitors", "patch"},
	} {
		if !allowed(need[0], need[1], need[2]) {
			t.Errorf("the operator's ClusterRole does not allow %s on %s.%s", need[2], need[1], need[0])
		}
	}
}

// dockerfile is a parsed Dockerfile: one instruction per logical line.
type instruction struct {
	cmd, args string
	stage     string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	stage := ""
	sc := bufio.NewScanner(f)
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			if _, name, ok := strings.Cut(strings.ToUpper(args), " AS "); ok {
				stage = strings.ToLower(strings.TrimSpace(name))
			}
		}
		out = append(out, instruction{cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return out
}

// TestDockerfile checks the image recipe statically: the stages exist and
// depend on each other correctly, both runtime images run as a non-root
// user, the server has a HEALTHCHECK and an entrypoint, base images are
// pinned, and every file copied from the build context exists and is not
// excluded by the dockerignore.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	stages := map[string]bool{}
	last := ""
	users := map[string]string{}
	has := map[string]map[string]bool{}
	for _, in := range ins {
		if has[in.stage] == nil {
			has[in.stage] = map[string]bool{}
		}
		has[in.stage][in.cmd] = true
		switch in.cmd {
		case "FROM":
			stages[in.stage] = true
			last = in.stage
			image := strings.Fields(in.args)[0]
			if !strings.Contains(image, ":") || strings.HasSuffix(image, ":latest") {
				t.Errorf("base image %s is not pinned to a tag", image)
			}
		case "USER":
			users[in.stage] = in.args
		case "ADD":
			t.Errorf("ADD %s: use COPY (ADD fetches URLs and unpacks archives implicitly)", in.args)
		case "COPY":
			fields := strings.Fields(in.args)
			if strings.HasPrefix(fields[0], "--from=") {
				if from := strings.TrimPrefix(fields[0], "--from="); !stages[from] {
					t.Errorf("COPY --from=%s: no earlier stage of that name", from)
				}
				continue
			}
			for _, src := range fields[:len(fields)-1] {
				if src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("COPY %s: not in the build context (the repository root)", src)
				}
			}
		case "RUN":
			for _, script := range regexp.MustCompile(`hack/[a-z0-9-]+\.sh`).FindAllString(in.args, -1) {
				if _, err := os.Stat(filepath.Join("..", script)); err != nil {
					t.Errorf("RUN uses %s, which does not exist", script)
				}
				if !dockerignoreKeeps(t, script) {
					t.Errorf("RUN uses %s, but the dockerignore leaves it out of the context", script)
				}
			}
		}
	}
	for _, s := range []string{"build", "operator", "server"} {
		if !stages[s] {
			t.Errorf("no %s stage", s)
		}
	}
	if last != "server" {
		t.Errorf("the default (last) stage is %s, want server", last)
	}
	for _, s := range []string{"server", "operator"} {
		if u := users[s]; u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
			t.Errorf("stage %s runs as %q; want a non-root uid", s, u)
		}
	}
	for _, cmd := range []string{"HEALTHCHECK", "ENTRYPOINT", "EXPOSE"} {
		if !has["server"][cmd] {
			t.Errorf("the server stage has no %s", cmd)
		}
	}
	// Every file of this module that the two binaries are built from must
	// be in the context.
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .CgoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}`, "../cmd/visionserve", "../cmd/visionserve-operator").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := append(strings.Fields(string(out)), filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	if len(files) < 20 {
		t.Fatalf("go list found only %d files", len(files))
	}
	for _, f := range files {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		if !dockerignoreKeeps(t, filepath.ToSlash(rel)) {
			t.Errorf("the dockerignore leaves %s out, and the build needs it", rel)
		}
	}
}

// dockerignoreKeeps evaluates Dockerfile.dockerignore for one path (the
// subset of the syntax it uses: **, trailing /, ! exceptions; last match wins).
func dockerignoreKeeps(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	keep := true
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		pat := strings.TrimPrefix(line, "!")
		if matchIgnore(pat, path) {
			keep = neg
		}
	}
	return keep
}

func matchIgnore(pat, path string) bool {
	if pat == "**" {
		return true
	}
	if dir, ok := strings.CutSuffix(pat, "/"); ok {
		if d, ok := strings.CutPrefix(dir, "**/"); ok {
			return strings.Contains("/"+path+"/", "/"+d+"/")
		}
		return strings.HasPrefix(path, dir+"/")
	}
	if p, ok := strings.CutPrefix(pat, "**/"); ok {
		m, _ := filepath.Match(p, filepath.Base(path))
		return m
	}
	m, _ := filepath.Match(pat, path)
	return m
}

// serverMetricNames lists every series name the server can export.
func serverMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	rec := &recordingRegisterer{}
	metrics.New(rec)
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := re.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	return names
}

type recordingRegisterer struct{ collectors []prometheus.Collector }

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}
func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}
func (r *recordingRegisterer) Unregister(prometheus.Collector) bool { return true }

var metricName = regexp.MustCompile(`\bvisionserve_[a-z_]+\b`)

// TestMonitoring: the dashboard and the alert rules parse and name only
// series the server exports.
func TestMonitoring(t *testing.T) {
	names := serverMetricNames(t)
	check := func(source, expr string) {
		for _, n := range metricName.FindAllString(expr, -1) {
			if !names[n] {
				t.Errorf("%s: %s is not a metric the server exports", source, n)
			}
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile(filepath.Join("monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("a dashboard without panels")
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err = os.ReadFile(filepath.Join("monitoring", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %q lacks a name, expression, severity or summary", r.Alert)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
			check("alert "+r.Alert, r.Expr)
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}
}
