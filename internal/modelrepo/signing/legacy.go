package signing

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"strconv"
	"strings"
)

// model_signing v0.2.0 formatted a Python bytes object into its DSSE
// pre-authentication encoding, so what it signed is
//
//	"DSSEV1 28 application/vnd.in-toto+json <N> " + repr(payload)
//
// (capital V; repr is Python's bytes repr), hashed with SHA-256 by its
// certificate signer and with the curve hash by its key signer. No library
// knows this encoding; it is accepted only for statements with the legacy
// predicate type, and never produced.

// isLegacyPayload reports whether payload claims the v0.2.0 predicate type.
func isLegacyPayload(payload []byte) bool {
	var w struct {
		PredicateType string `json:"predicateType"`
	}
	return json.Unmarshal(payload, &w) == nil && w.PredicateType == LegacyPredicateType
}

// legacyPAE returns the bytes model_signing v0.2.0 signed for payload.
func legacyPAE(payload []byte) []byte {
	prefix := "DSSEV1 " + strconv.Itoa(len(PayloadType)) + " " + PayloadType + " " + strconv.Itoa(len(payload)) + " "
	return []byte(prefix + pythonBytesRepr(payload))
}

// pythonBytesRepr reproduces Python 3's repr() of a bytes value.
func pythonBytesRepr(b []byte) string {
	quote := byte('\'')
	if strings.IndexByte(string(b), '\'') >= 0 && strings.IndexByte(string(b), '"') < 0 {
		quote = '"'
	}
	var sb strings.Builder
	sb.Grow(len(b) + 3)
	sb.WriteByte('b')
	sb.WriteByte(quote)
	const hexdigits = "0123456789abcdef"
	for _, c := range b {
		switch {
		case c == quote || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			sb.WriteString(`\x`)
			sb.WriteByte(hexdigits[c>>4])
			sb.WriteByte(hexdigits[c&0xf])
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte(quote)
	return sb.String()
}

// verifyLegacy checks sig over the legacy encoding of payload with SHA-256
// and with the curve hash.
func verifyLegacy(pub *ecdsa.PublicKey, payload, sig []byte) bool {
	msg := legacyPAE(payload)
	hashes := []crypto.Hash{crypto.SHA256}
	if a, err := AlgorithmOf(pub); err == nil && a.hash() != crypto.SHA256 {
		hashes = append(hashes, a.hash())
	}
	for _, h := range hashes {
		d := h.New()
		d.Write(msg)
		if ecdsa.VerifyASN1(pub, d.Sum(nil), sig) {
			return true
		}
	}
	return false
}
