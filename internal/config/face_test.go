package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery"
)

func TestFaceOffByDefault(t *testing.T) {
	if Default().Face.Enabled() {
		t.Fatal("face recognition is on by default; it needs model files")
	}
}

func TestLoadFace(t *testing.T) {
	c, err := Load("testdata/face.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := c.Face
	if !f.Enabled() || f.Sessions != 2 || f.Threshold != 0.5 || !f.Flip || f.Detect.ScoreThreshold != 0.8 || f.Detect.MaxSide != 960 {
		t.Errorf("face = %+v", f)
	}
	// Keys absent from the file keep their defaults, also inside nested
	// sections.
	d := Default().Face
	if f.Detect.NMSThreshold != d.Detect.NMSThreshold || f.Gallery.MaxGalleries != d.Gallery.MaxGalleries {
		t.Errorf("defaults lost: detect %+v gallery %+v", f.Detect, f.Gallery)
	}
	g := f.Gallery
	if g.Store != StorePostgres || g.ExactBelow != 5000 || g.HNSW.M != 16 || g.PollInterval != time.Second {
		t.Errorf("gallery = %+v", g)
	}
	mc := g.ManagerConfig()
	if mc.MaxFaces != 50000 || mc.Index.HNSW.EfSearch != 64 || mc.TenantQuota != (gallery.Quota{Galleries: 10, Faces: 5000}) ||
		mc.TenantQuotas["acme"] != (gallery.Quota{Galleries: 50, Faces: 20000}) {
		t.Errorf("manager config = %+v", mc)
	}
	sc := f.ServiceConfig(c.Limits)
	if sc.MaxTopK != 10 || sc.DefaultTopK != 3 || sc.Limits.MaxBytes != int64(c.Limits.MaxBytes) {
		t.Errorf("service config = %+v", sc)
	}
}

func TestLoadFaceRejects(t *testing.T) {
	_, err := Load("testdata/bad-face.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{
		"set both face.detector and face.embedder", "face.threshold", "face.max_faces",
		"face.detect.score_threshold", "holds a password", "face.gallery.hnsw: m", "face.gallery.poll_interval",
		"face.gallery.tenant_quotas.acme: galleries and faces must be positive",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func TestHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h/db":                 false,
		"postgres://u:p@h/db":               true,
		"postgresql://u@h/db?password=x":    true,
		"host=h user=u dbname=d":            false,
		"host=h user=u password=x dbname=d": true,
		"postgres://u@h/db?sslmode=require": false,
	} {
		if got := hasPassword(dsn); got != want {
			t.Errorf("hasPassword(%q) = %v", dsn, got)
		}
	}
}

// The face section of the documented defaults is the default.
func TestDocumentedFaceDefaults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Every key with its default:\n\n```yaml\n")
	if !ok {
		t.Fatal("docs/configuration.md: no defaults block")
	}
	block, _, _ := strings.Cut(rest, "```")
	// The face section runs from "face:" to the next top-level key.
	_, face, ok := strings.Cut(block, "\nface:")
	if !ok {
		t.Fatal("docs/configuration.md: the defaults block has no face section")
	}
	var section []string
	for _, line := range strings.Split(face, "\n")[1:] {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			break
		}
		section = append(section, line)
	}
	c, err := Parse([]byte("face:\n" + strings.Join(section, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Face, Default().Face) {
		t.Errorf("docs/configuration.md face defaults differ from Default():\n%+v\n%+v", c.Face, Default().Face)
	}
}

// Face models are files or repository models: exactly one way, both
// halves, valid names, and a repository for repository models.
func TestFaceModelsOneWay(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		// wantParse is the error of the file alone ("" = none), want the
		// error once the flags are applied (Validate).
		wantParse, want string
	}{
		{"files", "face: {detector: d.onnx, embedder: e.onnx}", "", ""},
		{"repository models", "repository: {dir: /models}\nface: {detector_model: face-detect, embedder_model: face-embed}", "", ""},
		{"repository from the command line", "face: {detector_model: face-detect, embedder_model: face-embed}",
			"", "face.detector_model and face.embedder_model name repository models, but there is no model repository"},
		{"detector model only", "repository: {dir: /models}\nface: {detector_model: face-detect}",
			"set both face.detector_model and face.embedder_model", "set both face.detector_model and face.embedder_model"},
		{"embedder model only", "repository: {dir: /models}\nface: {embedder_model: face-embed}",
			"set both face.detector_model and face.embedder_model", "set both"},
		{"both ways", "repository: {dir: /models}\nface: {detector: d.onnx, embedder: e.onnx, detector_model: face-detect, embedder_model: face-embed}",
			"name the models one way", "name the models one way"},
		{"mixed halves", "repository: {dir: /models}\nface: {detector: d.onnx, embedder_model: face-embed}",
			"name the models one way", "name the models one way"},
		{"bad name", "repository: {dir: /models}\nface: {detector_model: Face/Detect, embedder_model: face-embed}",
			`face.detector_model "Face/Detect" is not a valid model name`, "is not a valid model name"},
		{"one model for both", "repository: {dir: /models}\nface: {detector_model: face, embedder_model: face}",
			`face.detector_model and face.embedder_model are both "face"`, "are both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if !matches(err, tc.wantParse) {
				t.Fatalf("parse: %v, want %q", err, tc.wantParse)
			}
			if err != nil {
				return
			}
			if !c.Face.Enabled() {
				t.Error("face recognition is off")
			}
			if err := c.Validate(); !matches(err, tc.want) {
				t.Errorf("validate: %v, want %q", err, tc.want)
			}
		})
	}
	if (Face{DetectorModel: "d", EmbedderModel: "e"}).FromFiles() || !(Face{DetectorModel: "d"}).FromRepository() {
		t.Error("FromFiles/FromRepository")
	}
}

func matches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}
