package review

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/visionserve/visionserve/internal/keys"
)

// keyDomain names the review stores' records to package keys.
const keyDomain = "reviews"

// ref names a stored part of a review ("reviews": its JSON, "images":
// its line image) for package keys, which binds each sealed part to it.
func ref(tenant, id, part string) string { return part + "/" + tenant + "/" + id }

// seal returns a review's stored forms: its JSON without the image, and
// the image, each sealed by ring (as they are when encryption is off).
func seal(ring *keys.Ring, r Review) (meta, image []byte, err error) {
	if meta, err = json.Marshal(r); err != nil {
		return nil, nil, err
	}
	if meta, err = ring.Seal(ref(r.Tenant, r.ID, "reviews"), meta); err != nil {
		return nil, nil, err
	}
	if image, err = ring.Seal(ref(r.Tenant, r.ID, "images"), r.Image); err != nil {
		return nil, nil, err
	}
	return meta, image, nil
}

// decode reads a stored review; image may be nil.
func decode(ring *keys.Ring, tenant, id string, meta, image []byte) (Review, error) {
	meta, err := ring.Open(ref(tenant, id, "reviews"), meta)
	if err != nil {
		return Review{}, fmt.Errorf("review store: %w", err)
	}
	var r Review
	if err := json.Unmarshal(meta, &r); err != nil {
		return Review{}, fmt.Errorf("review store: a stored review does not parse: %w", err)
	}
	r.Tenant = tenant
	if image != nil {
		if image, err = ring.Open(ref(tenant, id, "images"), image); err != nil {
			return Review{}, fmt.Errorf("review store: %w", err)
		}
		r.Image = bytes.Clone(image)
	}
	return r, nil
}
