package ocrrepo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
)

// stub is an Instance of any kind; OCR kinds carry an ocr.Model.
type stub struct{ m *ocr.Model }

func (stub) Warmup(context.Context) error { return nil }
func (stub) Close() error                 { return nil }

type ocrStub struct{ stub }

func (s ocrStub) OCRModel() *ocr.Model { return s.m }

// verifyByPath accepts every directory; the kind is the file "kind" in it.
type verifyByPath struct{}

func (verifyByPath) Verify(_ context.Context, dir string) (*modelrepo.Package, error) {
	n, _ := strconv.Atoi(filepath.Base(dir))
	kind, _ := os.ReadFile(filepath.Join(dir, "kind"))
	lang, _ := os.ReadFile(filepath.Join(dir, "lang"))
	return &modelrepo.Package{Dir: dir, Name: filepath.Base(filepath.Dir(dir)), Version: n, Kind: string(kind), Runtime: lang}, nil
}

func TestSource(t *testing.T) {
	root := t.TempDir()
	for _, p := range []struct{ model, version, kind, lang string }{
		{"ocr-eng", "1", "ocr-tesseract", "eng"}, {"ocr-eng", "2", "ocr-tesseract", "eng"},
		{"ocr-deu", "1", "ocr-tesseract", "deu"}, {"faces", "1", "face-detect", ""},
		{"broken", "1", "no-such-kind", ""},
	} {
		dir := filepath.Join(root, p.model, p.version)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "kind"), []byte(p.kind), 0o644)
		os.WriteFile(filepath.Join(dir, "lang"), []byte(p.lang), 0o644)
	}
	load := modelrepo.LoaderFunc(func(_ context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
		m := &ocr.Model{Ref: ocr.ModelRef{Name: pkg.Name, Version: strconv.Itoa(pkg.Version)}, Languages: string(pkg.Runtime)}
		if pkg.Kind == "ocr-tesseract" {
			return ocrStub{stub{m}}, nil
		}
		return stub{m}, nil
	})
	repo, err := modelrepo.New(modelrepo.Options{
		Dir: root, Verifier: verifyByPath{}, NoWatch: true, RescanInterval: -1,
		Loaders:       map[string]modelrepo.Loader{"ocr-tesseract": load, "face-detect": load},
		DefaultPolicy: modelrepo.Policy{Latest: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer repo.Close(context.Background())
	src := &ocrrepo.Source{Repo: repo, Default: "ocr-eng"}
	for _, tc := range []struct {
		sel  ocr.Selector
		want string // "name/version" or an error sentinel's text
		err  error
	}{
		{sel: ocr.Selector{}, want: "ocr-eng/2"},
		{sel: ocr.Selector{Version: "1"}, want: "ocr-eng/1"},
		{sel: ocr.Selector{Name: "ocr-deu"}, want: "ocr-deu/1"},
		{sel: ocr.Selector{Lang: "deu"}, want: "ocr-deu/1"},
		{sel: ocr.Selector{Lang: "eng", Key: "k"}, want: "ocr-eng/2"},
		{sel: ocr.Selector{Name: "ocr-eng", Lang: "deu"}, err: ocr.ErrModelNotFound},
		{sel: ocr.Selector{Lang: "fra"}, err: ocr.ErrModelNotFound},
		{sel: ocr.Selector{Name: "nope"}, err: ocr.ErrModelNotFound},
		{sel: ocr.Selector{Name: "faces"}, err: ocr.ErrModelNotFound},
		{sel: ocr.Selector{Version: "7"}, err: ocr.ErrVersionNotFound},
		{sel: ocr.Selector{Version: "x"}, err: ocr.ErrVersionNotFound},
		// A model whose only version failed: 503 on the transports, and
		// version_not_found for the OCR core's failure reasons.
		{sel: ocr.Selector{Name: "broken"}, err: modelrepo.ErrNoReadyVersion},
		{sel: ocr.Selector{Name: "broken"}, err: ocr.ErrVersionNotFound},
	} {
		m, release, err := src.Acquire(tc.sel)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%+v: err = %v, want %v", tc.sel, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.sel, err)
			continue
		}
		if got := m.Ref.Name + "/" + m.Ref.Version; got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.sel, got, tc.want)
		}
		release()
	}
}
