package gallery

import (
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/keys"
)

// FuzzDecodeFace feeds arbitrary keys and values to the parser of stored
// face records: it must return an error or a face, never panic, and a
// record it wrote itself must read back unchanged.
func FuzzDecodeFace(f *testing.F) {
	c := keys.Clear(keyDomain)
	good := Face{ID: "abc", Gallery: Ref{Name: "g"}, Subject: "alice", Model: "m", Embedding: []float32{0.5, -1}, Created: time.Unix(1, 2).UTC()}
	rec, err := encodeFace(c, good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(faceKey(good.Subject, good.ID), rec)
	f.Add([]byte("nokey"), []byte{1})
	f.Add(faceKey("s", "i"), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		face, err := decodeFace(c, Ref{Name: "g"}, key, value)
		if err != nil {
			return
		}
		rec, err := encodeFace(c, face)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeFace(c, Ref{Name: "g"}, faceKey(face.Subject, face.ID), rec)
		if err != nil || again.ID != face.ID || again.Model != face.Model || len(again.Embedding) != len(face.Embedding) {
			t.Fatalf("round trip: %+v, %v (from %+v)", again, err, face)
		}
	})
}
