package gallery

import (
	"testing"
	"time"
)

// FuzzDecodeFace feeds arbitrary keys and values to the parser of stored
// face records: it must return an error or a face, never panic, and a
// record it wrote itself must read back unchanged.
func FuzzDecodeFace(f *testing.F) {
	good := Face{ID: "abc", Subject: "alice", Model: "m", Embedding: []float32{0.5, -1}, Created: time.Unix(1, 2).UTC()}
	f.Add(faceKey(good.Subject, good.ID), encodeFace(good))
	f.Add([]byte("nokey"), []byte{1})
	f.Add(faceKey("s", "i"), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		face, err := decodeFace(Ref{Name: "g"}, key, value)
		if err != nil {
			return
		}
		again, err := decodeFace(Ref{Name: "g"}, faceKey(face.Subject, face.ID), encodeFace(face))
		if err != nil || again.ID != face.ID || again.Model != face.Model || len(again.Embedding) != len(face.Embedding) {
			t.Fatalf("round trip: %+v, %v (from %+v)", again, err, face)
		}
	})
}
