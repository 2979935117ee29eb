package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
	"github.com/visionserve/visionserve/models"
)

// Issue 16: a version is served from exactly the bytes that were
// verified. For every package kind of the registry, and every file its
// loader reads, a signed package is verified, the file is then replaced in
// the directory by another valid model (what a writable, synced repository
// allows between verification and load), and the kind's loader is called
// with the verified package, as the repository and the isolated check's
// child call it: the load is refused with digest_mismatch naming the file,
// never built from the replaced bytes. The same package loads when
// nothing is replaced.
func TestEveryKindLoadsOnlyVerifiedBytes(t *testing.T) {
	onnxtest.Init(t)
	ocrDir := testenv.Shared(t, "models/ocr")
	read := func(dir, name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			testenv.Missing(t, err.Error())
		}
		return b
	}
	tessdata := tesseract.DefaultDataPath()
	eng, osd, chi := read(tessdata, "eng.traineddata"), read(tessdata, "osd.traineddata"), read(tessdata, "chi_sim.traineddata")
	det, cls := read(ocrDir, "en_PP-OCRv3_det_infer.onnx"), read(ocrDir, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
	rec, dict := read(ocrDir, "en_number_mobile_v2.0_rec_infer.onnx"), read(ocrDir, "en_dict.txt")
	yunet, err := models.Files.ReadFile("yunet_s_dynamic.onnx")
	if err != nil {
		t.Fatal(err)
	}
	mfn, err := models.Files.ReadFile("MobileFaceNet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	// Two valid ONNX models of the same size: y = x on rows of 3, and on
	// rows of 4.
	rows3, err := onnxtest.Identity(engine.FP32, []int64{-1, 3})
	if err != nil {
		t.Fatal(err)
	}
	rows4, err := onnxtest.Identity(engine.FP32, []int64{-1, 4})
	if err != nil {
		t.Fatal(err)
	}

	hybrid := map[string][]byte{"det.onnx": det, "cls.onnx": cls, "eng.traineddata": eng}
	ctc := map[string][]byte{"det.onnx": det, "rec.onnx": rec, "dict.txt": dict}
	for _, tc := range []struct {
		name    string
		kind    manifest.Kind
		runtime map[string]any
		files   map[string][]byte
		// swaps are the files replaced, one per case, and by what.
		swaps map[string][]byte
	}{
		{"onnx", manifest.KindONNX, map[string]any{"file": "model.onnx"}, map[string][]byte{"model.onnx": rows3},
			map[string][]byte{"model.onnx": rows4}},
		{"ocr-ppocr hybrid", manifest.KindOCRPPOCR, map[string]any{"det": "det.onnx", "cls": "cls.onnx"}, hybrid,
			map[string][]byte{"det.onnx": cls, "cls.onnx": det, "eng.traineddata": chi}},
		{"ocr-ppocr ctc", manifest.KindOCRPPOCR, map[string]any{"recognizer": "ctc", "det": "det.onnx", "cls": "", "rec": "rec.onnx", "dict": "dict.txt"}, ctc,
			map[string][]byte{"rec.onnx": det, "dict.txt": []byte("a\nb\n")}},
		{"ocr-tesseract", manifest.KindOCRTesseract, map[string]any{"lang": "eng"}, map[string][]byte{"eng.traineddata": eng, "osd.traineddata": osd},
			map[string][]byte{"eng.traineddata": chi, "osd.traineddata": eng}},
		{"ocr-tesseract two languages", manifest.KindOCRTesseract, map[string]any{"lang": "eng+chi_sim"},
			map[string][]byte{"eng.traineddata": eng, "chi_sim.traineddata": chi, "osd.traineddata": osd},
			map[string][]byte{"chi_sim.traineddata": eng, "eng.traineddata": chi}},
		{"face-detect", manifest.KindFaceDetect, nil, map[string][]byte{"yunet.onnx": yunet},
			map[string][]byte{"yunet.onnx": mfn}},
		{"face-embed", manifest.KindFaceEmbed, nil, map[string][]byte{"mfn.onnx": mfn},
			map[string][]byte{"mfn.onnx": yunet}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loaders := repositoryLoaders(loaderSetup{
				env:          loader.Env{Scheduler: sched.New(1, 4, nil), Instances: 1},
				faceSessions: 1,
			})
			l := loaders[string(tc.kind)]
			if l == nil {
				t.Fatalf("no loader registered for kind %s", tc.kind)
			}
			spec := repotest.Spec{Name: "m", Version: 1, Kind: tc.kind, Runtime: tc.runtime, Files: tc.files}
			pkg, _ := repotest.Verified(t, spec)
			inst, err := l.Load(context.Background(), pkg)
			if err != nil {
				t.Fatalf("the package as signed: %v", err)
			}
			inst.Close()
			for file, other := range tc.swaps {
				t.Run(file, func(t *testing.T) {
					pkg, dir := repotest.Verified(t, spec)
					// Replaced after verification, by the rename a sync
					// tool makes: another name, same place.
					tmp := filepath.Join(dir, ".swap")
					if err := os.WriteFile(tmp, other, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
						t.Fatal(err)
					}
					inst, err := l.Load(context.Background(), pkg)
					if err == nil {
						inst.Close()
						t.Fatalf("loaded the %s that replaced the verified one", file)
					}
					if !errors.Is(err, modelrepo.ReasonDigestMismatch) || !strings.Contains(err.Error(), file) {
						t.Errorf("error %v; want digest_mismatch naming %s", err, file)
					}
				})
			}
		})
	}
}
