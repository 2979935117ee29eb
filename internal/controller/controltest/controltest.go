// Package controltest starts the envtest control plane the operator's tests
// run against: a real kube-apiserver and etcd (hack/setup-envtest.sh builds
// and caches them), with the VisionService CRD and a minimal ServiceMonitor
// CRD installed. Without the binaries a test is skipped, naming the script,
// or failed under CI=true.
package controltest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/visionserve/visionserve/internal/testenv"
)

// KubernetesVersion is the version hack/setup-envtest.sh builds.
const KubernetesVersion = "1.31.4"

// AssetsDir returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else the cache hack/setup-envtest.sh fills. "" when
// neither holds both.
func AssetsDir() string {
	dirs := []string{os.Getenv("KUBEBUILDER_ASSETS")}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	dirs = append(dirs, filepath.Join(cache, "visionserve", "envtest", "k8s-"+KubernetesVersion))
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if isExec(filepath.Join(d, "kube-apiserver")) && isExec(filepath.Join(d, "etcd")) {
			return d
		}
	}
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// repoRoot is the repository root, from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Start starts a control plane with the CRDs installed; call stop when
// done. Without the binaries the error satisfies IsMissing.
func Start() (*rest.Config, func(), error) {
	dir := AssetsDir()
	if dir == "" {
		return nil, nil, errMissing
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths: []string{
			filepath.Join(repoRoot(), "deploy", "operator", "crd"),
			filepath.Join(repoRoot(), "internal", "controller", "controltest", "testdata"),
		},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// etcd 3.4 (Debian's) has no --unsafe-no-fsync; keep its data in
	// memory so fsync is cheap.
	var shm string
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "visionserve-etcd-"); err == nil {
			shm = d
			env.ControlPlane.Etcd = &envtest.Etcd{DataDir: d}
		}
	}
	cfg, err := env.Start()
	if err != nil {
		if shm != "" {
			os.RemoveAll(shm)
		}
		return nil, nil, err
	}
	return cfg, func() {
		_ = env.Stop()
		if shm != "" {
			os.RemoveAll(shm)
		}
	}, nil
}

type missingError struct{}

func (missingError) Error() string {
	return "the envtest control plane (kube-apiserver " + KubernetesVersion + " and etcd) is not installed: run hack/setup-envtest.sh, or set KUBEBUILDER_ASSETS"
}

var errMissing error = missingError{}

// IsMissing reports whether Start failed only because the binaries are absent.
func IsMissing(err error) bool { _, ok := err.(missingError); return ok }

// Require skips (or under CI=true fails) a test when the control plane did
// not start because its binaries are missing, and fails it on any other
// start error.
func Require(t testing.TB, startErr error) {
	t.Helper()
	if startErr == nil {
		return
	}
	if IsMissing(startErr) {
		testenv.Missing(t, startErr.Error())
	}
	t.Fatalf("starting the envtest control plane: %v", startErr)
}
