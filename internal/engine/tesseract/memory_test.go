package tesseract

import (
	"context"
	"encoding/binary"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/testenv"
)

// systemData reads the system's eng and osd traineddata.
func systemData(t testing.TB) map[string][]byte {
	t.Helper()
	data := map[string][]byte{}
	for _, lang := range []string{"eng", "osd"} {
		b, err := os.ReadFile(filepath.Join(DefaultDataPath(), lang+".traineddata"))
		if err != nil {
			testenv.Missing(t, "system tessdata missing (run hack/setup.sh): "+err.Error())
		}
		data[lang] = b
	}
	return data
}

// An engine built from bytes reads and orients exactly as one built from
// the files.
func TestIntegrationFromData(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	fromFiles := newEngine(t, true)
	fromData, err := New(Config{Languages: "eng", Orientation: true, Data: systemData(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer fromData.Close()
	sameReading(t, fromFiles, fromData, loadGray(t, filepath.Join(dir, "phototest.tif")))
	o, err := fromData.DetectOrientation(context.Background(), loadGray(t, filepath.Join(dir, "phototest-rotated-R.png")))
	if err != nil || o.Degrees != 270 {
		t.Errorf("orientation from data: %+v, %v", o, err)
	}
}

// Bytes that Tesseract cannot parse are refused before Tesseract sees
// them, even when a file it would fall back to exists in the working
// directory: an in-memory engine never opens a file.
func TestFromDataNeverFallsBackToFiles(t *testing.T) {
	data := systemData(t)
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "eng"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "eng", "eng.traineddata"), data["eng"], 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	for name, bad := range map[string][]byte{
		"zeros":     make([]byte, 4096),
		"text":      []byte("this is not a model, but it is long enough to have a header"),
		"truncated": data["eng"][:len(data["eng"])/2],
	} {
		t.Run(name, func(t *testing.T) {
			e, err := New(Config{Languages: "eng", Data: map[string][]byte{"eng": bad}})
			if err == nil {
				e.Close()
				t.Fatal("accepted; Tesseract loaded the file in the working directory instead")
			}
		})
	}
}

// Several languages load from the caller's bytes too (through a private
// copy that is gone when New returns) and read as the same languages
// loaded from the system's directory do.
func TestIntegrationFromDataSeveralLanguages(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	data := systemData(t)
	chi, err := os.ReadFile(filepath.Join(DefaultDataPath(), "chi_sim.traineddata"))
	if err != nil {
		testenv.Missing(t, "chi_sim.traineddata missing (run hack/setup.sh): "+err.Error())
	}
	data["chi_sim"] = chi
	fromFiles, err := New(Config{Languages: "eng+chi_sim"})
	if err != nil {
		t.Fatal(err)
	}
	defer fromFiles.Close()
	tmp := t.TempDir()
	fromData, err := New(Config{Languages: "eng+chi_sim", Orientation: true, Data: data, TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	defer fromData.Close()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the private copy is still there: %v", left)
	}
	sameReading(t, fromFiles, fromData, loadGray(t, filepath.Join(dir, "phototest.tif")))
}

// sameReading fails the test unless both engines read page, as the same
// non-empty text.
func sameReading(t *testing.T, fromFiles, fromData *Engine, page *image.Gray) {
	t.Helper()
	a, err := fromFiles.RecognizeText(context.Background(), page, engine.SegPage)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fromData.RecognizeText(context.Background(), page, engine.SegPage)
	if err != nil {
		t.Fatal(err)
	}
	if joined(a) != joined(b) || len(a) == 0 {
		t.Errorf("from files:\n%s\nfrom data:\n%s", joined(a), joined(b))
	}
}

func TestFromDataErrors(t *testing.T) {
	data := systemData(t)
	for name, cfg := range map[string]Config{
		"one of two languages missing": {Languages: "eng+deu", Data: data},
		"a language outside the copy":  {Languages: "eng+../osd", Data: map[string][]byte{"eng": data["eng"], "../osd": data["osd"]}},
		"no such data":                 {Languages: "deu", Data: data},
		"no osd":                       {Languages: "eng", Orientation: true, Data: map[string][]byte{"eng": data["eng"]}},
	} {
		t.Run(name, func(t *testing.T) {
			if e, err := New(cfg); err == nil {
				e.Close()
				t.Fatal("accepted")
			}
		})
	}
}

func TestCheckTraineddata(t *testing.T) {
	le := func(n uint32, offs ...int64) []byte {
		b := binary.LittleEndian.AppendUint32(nil, n)
		for _, o := range offs {
			b = binary.LittleEndian.AppendUint64(b, uint64(o))
		}
		return append(b, make([]byte, 64)...)
	}
	hdr := int64(4 + 8*3)
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"minimal", le(3, -1, hdr, hdr+10), true},
		{"short", []byte{1, 0}, false},
		{"no entries", le(3, -1, -1, -1), false},
		{"zero count", le(0), false},
		{"huge count", binary.LittleEndian.AppendUint32(nil, 5000), false},
		{"first not after header", le(3, hdr+1, hdr+2, -1), false},
		{"decreasing", le(3, hdr, hdr+20, hdr+10), false},
		{"beyond end", le(3, hdr, 1<<40, -1), false},
		{"truncated table", binary.LittleEndian.AppendUint32(nil, 100), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTraineddata(tc.data)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "traineddata") {
				t.Errorf("error %q does not say what is wrong", err)
			}
		})
	}
	for lang, b := range systemData(t) {
		if err := CheckTraineddata(b); err != nil {
			t.Errorf("system %s.traineddata: %v", lang, err)
		}
	}
}

func FuzzCheckTraineddata(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(nil, 1), 12))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = CheckTraineddata(data) // must not panic
	})
}
