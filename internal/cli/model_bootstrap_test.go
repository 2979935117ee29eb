package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/calib"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// bootstrap creates the key once, publishes version 1, does nothing while
// the system files are unchanged, and publishes version 2 when they change.
func TestModelBootstrap(t *testing.T) {
	home, tessdata := t.TempDir(), t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(tessdata, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("eng.traineddata", "english weights")
	write("osd.traineddata", "orientation weights")
	write("deu.traineddata", "not packaged")

	out := modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata)
	for _, want := range []string{"created signing key", "published ocr-eng version 1", "--models " + filepath.Join(home, "models"), "--trust-key " + filepath.Join(home, "keys", "public.pem")} {
		if !strings.Contains(out, want) {
			t.Errorf("first run: %q lacks %q", out, want)
		}
	}
	v1 := filepath.Join(home, "models", "ocr-eng", "1")
	pub := filepath.Join(home, "keys", "public.pem")
	if m, err := manifest.Load(v1); err != nil || strings.Contains(string(m.Runtime), "calibration") {
		t.Errorf("a file that is not Debian's eng model got its calibration: %s %v", m.Runtime, err)
	}
	if out := modelOK(t, "verify", "--key", pub, v1); !strings.Contains(out, "verified ocr-eng version 1") {
		t.Errorf("verify: %q", out)
	}
	for _, f := range []string{"eng.traineddata", "osd.traineddata", "manifest.json", "model.sig"} {
		if _, err := os.Stat(filepath.Join(v1, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(v1, "deu.traineddata")); err == nil {
		t.Error("another language was packaged")
	}
	if st, err := os.Stat(filepath.Join(home, "keys", "private.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key: %v %v", st.Mode(), err)
	}

	out = modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata)
	if !strings.Contains(out, "ocr-eng version 1 is up to date") || strings.Contains(out, "created") {
		t.Errorf("second run: %q", out)
	}

	write("eng.traineddata", "upgraded english weights")
	out = modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata)
	if !strings.Contains(out, "published ocr-eng version 2") {
		t.Errorf("after an upgrade: %q", out)
	}
	modelOK(t, "verify", "--key", pub, filepath.Join(home, "models", "ocr-eng", "2"))
	entries, _ := os.ReadDir(filepath.Join(home, "models", "ocr-eng"))
	if len(entries) != 2 {
		t.Errorf("leftovers in the repository: %v", entries)
	}

	if code, _, _ := runModelCmd(t, "bootstrap", "--home", home, "--tessdata", t.TempDir()); code != 1 {
		t.Errorf("bootstrap without tessdata: exit %d", code)
	}
	if code, _, _ := runModelCmd(t, "bootstrap", "--name", "Bad Name"); code != 2 {
		t.Errorf("bad name: exit %d", code)
	}
}

// The system's English model is packaged with the calibration fitted for
// it, so that served confidences mean what the built-in model's mean; any
// other file is packaged without one.
func TestModelBootstrapCalibration(t *testing.T) {
	system := filepath.Join(tesseract.DefaultDataPath(), "eng.traineddata")
	if sha, err := sha256File(system); err != nil || sha != debianEngSHA256 {
		testenv.Missing(t, "Debian's tesseract-ocr-eng eng.traineddata is not installed")
	}
	tessdata := t.TempDir()
	if err := copyFile(system, filepath.Join(tessdata, "eng.traineddata")); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata)
	m, err := manifest.Load(filepath.Join(home, "models", "ocr-eng", "1"))
	if err != nil {
		t.Fatal(err)
	}
	var rt struct {
		Lang        string
		Calibration calib.Curve
	}
	if err := json.Unmarshal(m.Runtime, &rt); err != nil || rt.Lang != "eng" || len(rt.Calibration) != len(config.DefaultCalibration) {
		t.Errorf("runtime %s: %+v %v", m.Runtime, rt, err)
	}
}

// serve's repository flags override the file's directory and add to its
// trust lists.
func TestServeRepositoryFlags(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("repository:\n  dir: /from-file\n  trust:\n    keys: [/file.pem]\n"), 0o644)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f serverFlags
	f.register(fs, config.Default(), true)
	if err := fs.Parse([]string{"--config", cfgFile, "--models", "/repo", "--trust-key", "/a.pem", "--trust-key", "/b.pem", "--trust-ca", "/ca.pem", "--allow-unsigned", "--traffic-file", "/run/traffic.json"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.load(fs)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Repository
	if r.Dir != "/repo" || strings.Join(r.Trust.Keys, ",") != "/file.pem,/a.pem,/b.pem" || strings.Join(r.Trust.CACertificates, ",") != "/ca.pem" || !r.Trust.AllowUnsigned ||
		r.TrafficFile != "/run/traffic.json" {
		t.Errorf("repository %+v", r)
	}
}

// bootstrap --face packages the shared face models next to the OCR model,
// each with its licence, as face-detect and face-embed: kinds the server
// loads, with the default runtime options.
func TestModelBootstrapFace(t *testing.T) {
	home, tessdata, faces := t.TempDir(), t.TempDir(), t.TempDir()
	for dir, files := range map[string][]string{
		tessdata: {"eng.traineddata"},
		faces:    {"yunet_s_dynamic.onnx", "LICENSE.ShiqiYu-libfacedetection.train", "MobileFaceNet.onnx", "face_detection_yunet_2023mar.onnx"},
	} {
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("contents of "+f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata, "--face", faces)
	for _, want := range []string{
		"published ocr-eng version 1", "published face-detect version 1 (yunet_s_dynamic.onnx, LICENSE.ShiqiYu-libfacedetection.train)",
		"published face-embed version 1 (MobileFaceNet.onnx)", "detector_model: face-detect, embedder_model: face-embed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	pub := filepath.Join(home, "keys", "public.pem")
	for name, kind := range map[string]manifest.Kind{"face-detect": manifest.KindFaceDetect, "face-embed": manifest.KindFaceEmbed} {
		dir := filepath.Join(home, "models", name, "1")
		modelOK(t, "verify", "--key", pub, dir)
		m, err := manifest.Load(dir)
		if err != nil || m.Kind != kind || len(m.Runtime) != 0 {
			t.Errorf("%s: %+v %v", name, m, err)
		}
	}
	out = modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata, "--face", faces)
	if !strings.Contains(out, "face-embed version 1 is up to date") {
		t.Errorf("second run: %q", out)
	}
	if code, _, _ := runModelCmd(t, "bootstrap", "--home", home, "--tessdata", tessdata, "--face", t.TempDir()); code != 1 {
		t.Errorf("bootstrap --face without the models: exit %d", code)
	}
}

// Face models named in a configuration file need a repository, which the
// command line may give (--models): the file alone is not refused.
func TestServeFaceModelsWithModelsFlag(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("face:\n  detector_model: face-detect\n  embedder_model: face-embed\n"), 0o644)
	load := func(args ...string) error {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		var f serverFlags
		f.register(fs, config.Default(), true)
		if err := fs.Parse(append([]string{"--config", cfgFile}, args...)); err != nil {
			t.Fatal(err)
		}
		_, err := f.load(fs)
		return err
	}
	if err := load("--models", "/repo"); err != nil {
		t.Errorf("with --models: %v", err)
	}
	if err := load(); err == nil || !strings.Contains(err.Error(), "there is no model repository") {
		t.Errorf("without a repository: %v", err)
	}
}

// writeFiles writes each named file into dir with made-up contents.
func writeFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, f := range names {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("contents of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// By default bootstrap publishes every default model it finds: Tesseract
// English and Simplified Chinese, the PP-OCRv4 Chinese package with its
// licences and runtime (CTC, input height 48), and the built-in face
// models with theirs, all verified by the local key; a second run
// publishes nothing.
func TestModelBootstrapDefaults(t *testing.T) {
	home, tessdata, v4 := t.TempDir(), t.TempDir(), t.TempDir()
	writeFiles(t, tessdata, "eng.traineddata", "osd.traineddata", "chi_sim.traineddata", "chi_sim_vert.traineddata")
	writeFiles(t, v4, ppocr.V4Files...)
	t.Setenv(ppocr.V4ModelsEnv, v4)
	out := modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata)
	for _, want := range []string{
		"published ocr-eng version 1 (eng.traineddata, osd.traineddata)",
		"published ocr-chi-sim version 1 (chi_sim.traineddata, osd.traineddata)",
		"published ocr-zh version 1 (ch_PP-OCRv4_det_infer.onnx, ch_PP-OCRv4_rec_infer.onnx, ch_ppocr_mobile_v2.0_cls_infer.onnx, ppocr_keys_v1.txt, LICENSE.PaddleOCR, LICENSE.gutenye-ocr)",
		"published face-detect version 1 (yunet_s_dynamic.onnx, LICENSE.ShiqiYu-libfacedetection.train)",
		"published face-embed version 1 (MobileFaceNet.onnx, LICENSE.foamliu-MobileFaceNet)",
		"detector_model: face-detect, embedder_model: face-embed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	pub := filepath.Join(home, "keys", "public.pem")
	runtimes := map[string]string{}
	for name, kind := range map[string]manifest.Kind{
		"ocr-eng": manifest.KindOCRTesseract, "ocr-chi-sim": manifest.KindOCRTesseract, "ocr-zh": manifest.KindOCRPPOCR,
		"face-detect": manifest.KindFaceDetect, "face-embed": manifest.KindFaceEmbed,
	} {
		dir := filepath.Join(home, "models", name, "1")
		modelOK(t, "verify", "--key", pub, dir)
		m, err := manifest.Load(dir)
		if err != nil || m.Kind != kind {
			t.Fatalf("%s: %+v %v", name, m, err)
		}
		runtimes[name] = string(m.Runtime)
	}
	if rt := strings.Join(strings.Fields(runtimes["ocr-chi-sim"]), ""); rt != `{"lang":"chi_sim"}` {
		t.Errorf("ocr-chi-sim runtime %s", rt)
	}
	var zh struct {
		Recognizer, Det, Rec, Cls, Dict, Lang string
		Params                                ppocr.Params
	}
	zh.Params = ppocr.DefaultParams()
	if err := json.Unmarshal([]byte(runtimes["ocr-zh"]), &zh); err != nil {
		t.Fatal(err)
	}
	if zh.Recognizer != "ctc" || zh.Rec != ppocr.V4Rec || zh.Det != ppocr.V4Det || zh.Dict != ppocr.V4Dict || zh.Lang != "chi_sim" || zh.Params != ppocr.V4Params() {
		t.Errorf("ocr-zh runtime %s: %+v", runtimes["ocr-zh"], zh)
	}
	// The face packages hold the repository's models/ files byte for byte.
	for _, f := range []string{"yunet_s_dynamic.onnx", "LICENSE.ShiqiYu-libfacedetection.train"} {
		got, _ := os.ReadFile(filepath.Join(home, "models", "face-detect", "1", f))
		want, err := os.ReadFile(filepath.Join("..", "..", "models", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("face-detect %s differs from models/%s (%v)", f, f, err)
		}
	}
	out = modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata)
	if strings.Contains(out, "published") {
		t.Errorf("second run published again: %q", out)
	}
}

// Defaults whose files are missing are skipped with a note saying how to
// get them; an explicit --ppocr that lacks the files, or a bad name, is an
// error; --face none publishes no face models.
func TestModelBootstrapSkips(t *testing.T) {
	home, tessdata := t.TempDir(), t.TempDir()
	writeFiles(t, tessdata, "eng.traineddata")
	t.Setenv(ppocr.V4ModelsEnv, t.TempDir())
	out := modelOK(t, "bootstrap", "--home", home, "--tessdata", tessdata, "--face", "none")
	for _, want := range []string{"published ocr-eng version 1", "skipped ocr-chi-sim (install tesseract-ocr-chi-sim", "skipped ocr-zh (", "run hack/setup-models.sh"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "face") {
		t.Errorf("--face none published face models: %q", out)
	}
	modelFails(t, "ocr-zh: stat ch_PP-OCRv4_det_infer.onnx", "bootstrap", "--home", home, "--tessdata", tessdata, "--ppocr", t.TempDir())
	if code, _, _ := runModelCmd(t, "bootstrap", "--home", home, "--zh", "ocr-eng"); code != 2 {
		t.Errorf("two packages of one name: exit %d", code)
	}
	if code, _, _ := runModelCmd(t, "bootstrap", "--home", home, "--chi-sim", "Bad"); code != 2 {
		t.Errorf("bad name: exit %d", code)
	}
}

// A release that changes a default's runtime options but not its files
// (ocr-zh's recogniser settings) publishes a new version; the same options
// spelt differently do not.
func TestBootstrapRepublishesChangedRuntime(t *testing.T) {
	home, src := t.TempDir(), t.TempDir()
	writeFiles(t, src, "a.onnx")
	signer, pub, _, err := localKey(filepath.Join(home, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(home, "models")
	for i, step := range []struct {
		runtime   string
		version   int
		published bool
	}{
		{`{"params": {"rec": {"batch": 6}}}`, 1, true},
		{`{"params":{"rec":{"batch":6}}}`, 1, false},
		{`{"params": {"rec": {"batch": 1}}}`, 2, true},
	} {
		p := systemPackage{name: "ocr-zh", kind: manifest.KindOCRPPOCR, runtime: json.RawMessage(step.runtime), files: []sourceFile{{os.DirFS(src), "a.onnx"}}}
		v, published, err := publishSystemModel(context.Background(), repo, p, signer, pub)
		if err != nil || v != step.version || published != step.published {
			t.Errorf("step %d (%s): version %d, published %v, %v; want %d, %v", i, step.runtime, v, published, err, step.version, step.published)
		}
	}
}
