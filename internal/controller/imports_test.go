package controller

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerDoesNotImportKubernetes keeps the operator's dependencies out
// of the server binary: visionserve must build and start without a line of
// Kubernetes in it.
func TestServerDoesNotImportKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/visionserve/visionserve/cmd/visionserve").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"k8s.io/api/", "k8s.io/apimachinery/", "k8s.io/client-go/", "sigs.k8s.io/controller-runtime",
		"helm.sh/", "github.com/visionserve/visionserve/internal/controller", "github.com/visionserve/visionserve/api/"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("the server imports %s", pkg)
			}
		}
	}
}
