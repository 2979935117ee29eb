package fleet_test

import (
	"cmp"
	"debug/elf"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/testenv"
)

// TestImageSmoke runs the server image as docs/operator.md tells users to:
// podman, a read-only root filesystem, a tmpfs /tmp, the models mounted
// read-only, published on a loopback port of a bridge network. It checks that
// it runs as the non-root user and cannot write its root filesystem, that
// the image's own HEALTHCHECK passes, a real OCR result (CER on phototest at
// most 1%) and a face result, from signed packages the image's own `model
// bootstrap` made.
//
// VISIONSERVE_IMAGE names the image (`make image-smoke` sets it); without it
// the test skips. VISIONSERVE_IMAGE_ARCH=arm64 runs a foreign image under
// qemu-user-static (the same checks, slow), and checks that its binaries
// really are that architecture's.
func TestImageSmoke(t *testing.T) {
	image := os.Getenv("VISIONSERVE_IMAGE")
	if image == "" {
		t.Skip("runs with `make image-smoke` (VISIONSERVE_IMAGE names the image to run)")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		testenv.Missing(t, "podman not found (Debian: podman; hack/setup-images.sh)")
	}
	if os.Getenv("CONTAINERS_CONF") == "" {
		t.Setenv("CONTAINERS_CONF", filepath.Join(repoRoot(t), "hack", "containers.conf"))
	}
	arch := os.Getenv("VISIONSERVE_IMAGE_ARCH")
	platform := []string{}
	if arch != "" {
		platform = []string{"--arch", arch}
	}
	faces := testenv.Shared(t, "models/face")
	start := time.Now()

	// The models: made by the image's own CLI, as its user, into a directory
	// it may write (the container's root filesystem stays read-only).
	home := t.TempDir()
	if err := os.Chmod(home, 0o777); err != nil {
		t.Fatal(err)
	}
	podman := append([]string{"podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp",
		"-v", home + ":/work", "-v", faces + ":/faces:ro"}, platform...)
	podman = append(podman, image)
	bootstrap(t, podman, "/work", "/usr/share/tesseract-ocr/5/tessdata", "/faces")
	chmodWorld(t, home)
	config := filepath.Join(t.TempDir(), "config.yaml")
	// Jobs on the container's tmpfs, sealed at rest with a KEK the server
	// user may read, as a mounted Secret would be.
	kek := filepath.Join(t.TempDir(), "kek")
	text, err := keys.NewKEK(keys.SM4GCM)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kek, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(kek), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte("face:\n  detector_model: face-detect\n  embedder_model: face-embed\n"+
		"jobs:\n  dir: /tmp/jobs\nencryption:\n  kek_file: /etc/visionserve/kek\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(config), 0o755); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	name := "visionserve-smoke-" + strconv.Itoa(os.Getpid())
	args := append([]string{"run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
		"-p", "127.0.0.1:" + strconv.Itoa(port) + ":8080",
		"-v", filepath.Join(home, "models") + ":/models:ro",
		"-v", filepath.Join(home, "keys", "public.pem") + ":/etc/visionserve/trust/public.pem:ro",
		"-v", config + ":/etc/visionserve/config.yaml:ro", "-v", kek + ":/etc/visionserve/kek:ro"}, platform...)
	args = append(args, image, "serve", "--addr", ":8080", "--no-auth",
		"--config", "/etc/visionserve/config.yaml", "--models", "/models", "--trust-key", "/etc/visionserve/trust/public.pem")
	run(t, "", "podman", args...)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := runErr("", "podman", "logs", "--tail", "40", name)
			t.Logf("container logs:\n%s", logs)
		}
		_, _ = runErr("", "podman", "rm", "-f", "-t", "5", name)
	})

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, base+"/readyz", 10*time.Minute)
	t.Logf("ready after %s", time.Since(start).Round(time.Second))

	checkMachine(t, name, cmp.Or(arch, runtime.GOARCH))
	user := strings.TrimSpace(run(t, "", "podman", "exec", name, "id", "-u"))
	if user != "65532" {
		t.Errorf("the server runs as uid %s, want 65532", user)
	}
	if out, err := runErr("", "podman", "exec", name, "touch", "/usr/local/bin/x"); err == nil {
		t.Errorf("the root filesystem is writable (touch succeeded: %s)", out)
	} else {
		t.Logf("read-only root: %v", err)
	}
	// the image's HEALTHCHECK (podman runs it on demand; no systemd timers here)
	if out, err := runErr("", "podman", "healthcheck", "run", name); err != nil {
		t.Errorf("the image's HEALTHCHECK failed: %v %s", err, out)
	} else {
		t.Logf("HEALTHCHECK: healthy")
	}

	checkSBOM(t, run(t, "", "podman", "exec", name, "cat", "/usr/share/doc/visionserve/sbom.spdx.json"))

	client := &http.Client{Timeout: 10 * time.Minute}
	checkOCR(t, client, base, "", 0.01)
	checkFaces(t, client, base, "")
	checkPDFJob(t, client, base, "", 0.01)
	t.Logf("smoke test of %s passed in %s", image, time.Since(start).Round(time.Second))
}

// checkMachine checks that the server binary and ONNX Runtime in the
// running container are built for goarch: an image whose configuration says
// arm64 but holds amd64 files would run natively here and pass everything else.
func checkMachine(t *testing.T, container, goarch string) {
	t.Helper()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
	if want == elf.EM_NONE {
		t.Fatalf("no ELF machine known for %s", goarch)
	}
	dir := t.TempDir()
	for _, f := range []string{"/usr/local/bin/visionserve", "/usr/local/lib/visionserve/libonnxruntime.so.1"} {
		local := filepath.Join(dir, filepath.Base(f))
		run(t, "", "podman", "cp", container+":"+f, local)
		e, err := elf.Open(local)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got := e.Machine
		e.Close()
		if got != want {
			t.Errorf("%s is built for %s, want %s (%s)", f, got, want, goarch)
		} else {
			t.Logf("%s: %s", f, got)
		}
	}
}

// checkSBOM checks the image's SPDX document lists both halves of what is in
// it: Debian packages (Tesseract's runtime) and the Go modules linked into
// the server.
func checkSBOM(t *testing.T, doc string) {
	t.Helper()
	var sbom struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name         string `json:"name"`
			VersionInfo  string `json:"versionInfo"`
			ExternalRefs []struct {
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(doc), &sbom); err != nil {
		t.Fatalf("the image's SBOM is not JSON: %v", err)
	}
	var deb, golang int
	var found []string
	for _, p := range sbom.Packages {
		for _, r := range p.ExternalRefs {
			switch {
			case strings.HasPrefix(r.Locator, "pkg:deb/"):
				deb++
			case strings.HasPrefix(r.Locator, "pkg:golang/"):
				golang++
			default:
				continue
			}
			if p.Name == "libtesseract5" || p.Name == "google.golang.org/grpc" {
				found = append(found, p.Name+" "+p.VersionInfo)
			}
			break
		}
	}
	t.Logf("SBOM (%s): %d Debian packages, %d Go modules; %s", sbom.SPDXVersion, deb, golang, strings.Join(found, ", "))
	if deb == 0 || golang == 0 || len(found) < 2 {
		t.Errorf("the SBOM lacks Debian packages or Go modules (%d deb, %d golang, found %v)", deb, golang, found)
	}
}
