package gallery

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// The stored forms of faces. Every embedding a store writes goes through
// encodeEmbedding and every one it reads through decodeEmbedding (the
// bbolt record below embeds that encoding; PostgreSQL stores it as the
// embedding column), and both pass it through the store's codec: a
// keys.Ring that seals it at rest, bound to its face (sealRef).

// keyDomain names the galleries' records to package keys.
const keyDomain = "gallery"

// codec seals and opens stored embeddings (a *keys.Ring).
type codec interface {
	Seal(ref string, b []byte) ([]byte, error)
	Open(ref string, b []byte) ([]byte, error)
}

// sealRef names a face's embedding for sealing: a sealed embedding opens
// only as that of the same tenant, gallery, subject, face id and embedder,
// so one copied over another face's record does not open.
func sealRef(g Ref, subject, id, model string) string {
	return fmt.Sprintf("face/%q/%q/%q/%q/%q", g.Tenant, g.Name, subject, id, model)
}

// faceRecordV1 is the first byte of a stored face record: version 1 is
// created (int64 Unix nanoseconds, big-endian), the model id's length
// (uint16, big-endian) and bytes, then the embedding (encodeEmbedding).
const faceRecordV1 = 1

// faceKey is subject, NUL, face id: a subject's faces are one key range
// (subject names cannot hold NUL).
func faceKey(subject, id string) []byte {
	k := make([]byte, 0, len(subject)+1+len(id))
	k = append(k, subject...)
	k = append(k, 0)
	return append(k, id...)
}

func encodeFace(c codec, f Face) ([]byte, error) {
	emb, err := encodeEmbedding(c, sealRef(f.Gallery, f.Subject, f.ID, f.Model), f.Embedding)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+8+2+len(f.Model)+len(emb))
	out = append(out, faceRecordV1)
	out = binary.BigEndian.AppendUint64(out, uint64(f.Created.UnixNano()))
	out = binary.BigEndian.AppendUint16(out, uint16(len(f.Model)))
	out = append(out, f.Model...)
	return append(out, emb...), nil
}

// parseFace takes the record v of key apart: the face without its
// embedding, and the embedding as stored (a slice of v).
func parseFace(gallery Ref, key, v []byte) (Face, []byte, error) {
	i := bytes.IndexByte(key, 0)
	if i < 0 {
		return Face{}, nil, fmt.Errorf("gallery %s: malformed face key %q", gallery, key)
	}
	if len(v) < 11 || v[0] != faceRecordV1 {
		return Face{}, nil, fmt.Errorf("gallery %s: face %q: unknown record format", gallery, key[i+1:])
	}
	created := int64(binary.BigEndian.Uint64(v[1:9]))
	ml := int(binary.BigEndian.Uint16(v[9:11]))
	if len(v) < 11+ml {
		return Face{}, nil, fmt.Errorf("gallery %s: face %q: truncated record", gallery, key[i+1:])
	}
	f := Face{
		ID: string(key[i+1:]), Gallery: gallery, Subject: string(key[:i]),
		Model: string(v[11 : 11+ml]), Created: time.Unix(0, created).UTC(),
	}
	return f, v[11+ml:], nil
}

// decodeFace copies a record out of bbolt's memory, which is valid only
// inside the transaction.
func decodeFace(c codec, gallery Ref, key, v []byte) (Face, error) {
	f, emb, err := parseFace(gallery, key, v)
	if err != nil {
		return Face{}, err
	}
	if f.Embedding, err = decodeEmbedding(c, sealRef(gallery, f.Subject, f.ID, f.Model), emb); err != nil {
		return Face{}, fmt.Errorf("gallery %s: face %q: %w", gallery, f.ID, err)
	}
	return f, nil
}

// encodeEmbedding packs v as little-endian float32s and seals them as the
// embedding ref names.
func encodeEmbedding(c codec, ref string, v []float32) ([]byte, error) {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return c.Seal(ref, out)
}

// decodeEmbedding opens and unpacks encodeEmbedding's output.
func decodeEmbedding(c codec, ref string, b []byte) ([]float32, error) {
	b, err := c.Open(ref, b)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of float32s", ErrEmbedding, len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}
