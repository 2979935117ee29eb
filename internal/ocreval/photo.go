package ocreval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PhotoPage is one item of a photographed-pages set
// (shared/data/ocr/photo-pages): a phone photo of a page, the same page
// flat, its text, and where the page lies in the photo.
type PhotoPage struct {
	Name  string // the item's stem, e.g. "11"
	Lang  string // "en" or "zh", from meta.jsonl
	Photo string // path of the photo (NN.jpg)
	Flat  string // path of the flat page (NN.flat.png)
	Truth string // the page's text, lines joined by "\n"
	// Corners are the page's corners in the photo: top-left, top-right,
	// bottom-right, bottom-left.
	Corners [4][2]float64
	// FlatToPhoto maps a flat-page pixel (x, y, 1) to the photo.
	FlatToPhoto [3][3]float64
}

// ToPhoto maps a point of the flat page into the photo.
func (p PhotoPage) ToPhoto(x, y float64) (float64, float64) {
	h := p.FlatToPhoto
	w := h[2][0]*x + h[2][1]*y + h[2][2]
	return (h[0][0]*x + h[0][1]*y + h[0][2]) / w, (h[1][0]*x + h[1][1]*y + h[1][2]) / w
}

// LoadPhotoPages reads the items listed in dir/meta.jsonl, in name order.
func LoadPhotoPages(dir string) ([]PhotoPage, error) {
	f, err := os.Open(filepath.Join(dir, "meta.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []PhotoPage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var meta struct{ File, Lang string }
		if err := json.Unmarshal(sc.Bytes(), &meta); err != nil {
			return nil, fmt.Errorf("meta.jsonl: %w", err)
		}
		p, err := loadPhotoPage(dir, meta.File, meta.Lang)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no items in %s/meta.jsonl", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func loadPhotoPage(dir, name, lang string) (PhotoPage, error) {
	stem := filepath.Join(dir, name)
	p := PhotoPage{Name: name, Lang: lang, Photo: stem + ".jpg", Flat: stem + ".flat.png"}
	truth, err := os.ReadFile(stem + ".txt")
	if err != nil {
		return p, err
	}
	p.Truth = strings.TrimSpace(string(truth))
	var corners struct {
		Corners     [4][2]float64 `json:"corners"`
		FlatToPhoto [3][3]float64 `json:"homography_flat_to_photo"`
	}
	if err := readJSON(stem+".corners.json", &corners); err != nil {
		return p, err
	}
	p.Corners, p.FlatToPhoto = corners.Corners, corners.FlatToPhoto
	for _, f := range []string{p.Photo, p.Flat} {
		if _, err := os.Stat(f); err != nil {
			return p, err
		}
	}
	return p, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
