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
// embedding column): encryption at rest belongs in these two functions.

// faceRecordV1 is the first byte of a stored face record: version 1 is
// created (int64 Unix nanoseconds, big-endian), the model id's length
// (uint16, big-endian) and bytes, then the embedding as little-endian
// float32s.
const faceRecordV1 = 1

// faceKey is subject, NUL, face id: a subject's faces are one key range
// (subject names cannot hold NUL).
func faceKey(subject, id string) []byte {
	k := make([]byte, 0, len(subject)+1+len(id))
	k = append(k, subject...)
	k = append(k, 0)
	return append(k, id...)
}

func encodeFace(f Face) []byte {
	out := make([]byte, 0, 1+8+2+len(f.Model)+4*len(f.Embedding))
	out = append(out, faceRecordV1)
	out = binary.BigEndian.AppendUint64(out, uint64(f.Created.UnixNano()))
	out = binary.BigEndian.AppendUint16(out, uint16(len(f.Model)))
	out = append(out, f.Model...)
	return append(out, encodeEmbedding(f.Embedding)...)
}

// decodeFace copies a record out of bbolt's memory, which is valid only
// inside the transaction.
func decodeFace(gallery Ref, key, v []byte) (Face, error) {
	i := bytes.IndexByte(key, 0)
	if i < 0 {
		return Face{}, fmt.Errorf("gallery %s: malformed face key %q", gallery, key)
	}
	if len(v) < 11 || v[0] != faceRecordV1 {
		return Face{}, fmt.Errorf("gallery %s: face %q: unknown record format", gallery, key[i+1:])
	}
	created := int64(binary.BigEndian.Uint64(v[1:9]))
	ml := int(binary.BigEndian.Uint16(v[9:11]))
	if len(v) < 11+ml {
		return Face{}, fmt.Errorf("gallery %s: face %q: truncated record", gallery, key[i+1:])
	}
	emb, err := decodeEmbedding(v[11+ml:])
	if err != nil {
		return Face{}, fmt.Errorf("gallery %s: face %q: %w", gallery, key[i+1:], err)
	}
	return Face{
		ID: string(key[i+1:]), Gallery: gallery, Subject: string(key[:i]),
		Model: string(v[11 : 11+ml]), Embedding: emb, Created: time.Unix(0, created).UTC(),
	}, nil
}

// encodeEmbedding packs v as little-endian float32s.
func encodeEmbedding(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// decodeEmbedding unpacks encodeEmbedding's output.
func decodeEmbedding(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of float32s", ErrEmbedding, len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}
