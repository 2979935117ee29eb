package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook headers, as in the Standard Webhooks specification
// (https://www.standardwebhooks.com), so its libraries verify them:
//
//	Webhook-Id:        the delivery id, the same on every retry
//	Webhook-Timestamp: Unix seconds of this attempt
//	Webhook-Signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// secretPrefix marks a Standard Webhooks secret: the key is the base64
// that follows.
const secretPrefix = "whsec_"

// minSecret is the shortest webhook key accepted.
const minSecret = 24

// ParseSecret turns the configured secret into the HMAC key.
func ParseSecret(s string) ([]byte, error) {
	if b64, ok := strings.CutPrefix(s, secretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%s secret is not valid base64: %w", secretPrefix, err)
		}
		if len(key) < minSecret {
			return nil, fmt.Errorf("the key is %d bytes; at least %d are needed", len(key), minSecret)
		}
		return key, nil
	}
	if len(s) < 32 {
		return nil, fmt.Errorf("the secret is %d characters; use at least 32, or whsec_ and base64 of %d random bytes", len(s), minSecret)
	}
	return []byte(s), nil
}

// Sign returns the Webhook-Signature value for a delivery.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts.Unix())
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ErrBadSignature: a webhook's signature or timestamp does not verify.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Verify checks a received webhook as a receiver should: the timestamp is
// within tolerance of now (against replays) and one of the signatures in
// the header matches (several appear, space-separated, while a secret is
// rotated). Receivers de-duplicate on the Webhook-Id.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing webhook headers", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrBadSignature)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %v is outside the tolerance", ErrBadSignature, ts)
	}
	want := Sign(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
