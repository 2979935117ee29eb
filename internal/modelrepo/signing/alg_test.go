package signing

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	must(t, err)
	return b
}

// derSignature encodes r and s as the ASN.1 SEQUENCE OpenSSL and this
// package exchange.
func derSignature(t testing.TB, r, s []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(r))
		b.AddASN1BigInt(new(big.Int).SetBytes(s))
	})
	out, err := b.Bytes()
	must(t, err)
	return out
}

// TestGMT0003Example checks the signature example of GM/T 0003.5-2012
// (SM2 part 5, parameter definitions), Annex A, on the recommended curve:
// message "message digest", the default user id, the key pair below and
// the signature (r, s) verify through this package's verification, and
// Z and e, which the user id determines, are the standard's values.
func TestGMT0003Example(t *testing.T) {
	d := unhex(t, "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
	x := unhex(t, "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020")
	y := unhex(t, "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
	wantZ := unhex(t, "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3")
	wantE := unhex(t, "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
	r := unhex(t, "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3")
	s := unhex(t, "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")
	msg := []byte("message digest")

	pub, err := sm2.NewPublicKey(append(append([]byte{4}, x...), y...))
	must(t, err)
	if alg, err := AlgorithmOf(pub); err != nil || alg != SM2SM3 {
		t.Fatalf("AlgorithmOf = %s, %v", alg, err)
	}
	priv, err := sm2.NewPrivateKey(d)
	must(t, err)
	if !priv.PublicKey.Equal(pub) {
		t.Fatal("the example's private key does not give its public key")
	}
	z, err := sm2.CalculateZA(pub, []byte(SM2UserID))
	must(t, err)
	if !equalBytes(z, wantZ) {
		t.Errorf("Z = %X, want %X", z, wantZ)
	}
	e, err := sm2.CalculateSM2Hash(pub, msg, []byte(SM2UserID))
	must(t, err)
	if !equalBytes(e, wantE) {
		t.Errorf("e = %X, want %X", e, wantE)
	}

	sig := derSignature(t, r, s)
	if !isDERSignature(sig) {
		t.Fatal("test bug: not DER")
	}
	if !verifyMessage(pub, msg, sig) {
		t.Fatal("the GM/T 0003.5 example signature does not verify")
	}
	flipped := append([]byte(nil), s...)
	flipped[len(flipped)-1] ^= 1
	if verifyMessage(pub, msg, derSignature(t, r, flipped)) {
		t.Error("a changed s verifies")
	}
	if verifyMessage(pub, []byte("message digesT"), sig) {
		t.Error("the signature verifies another message")
	}
	// Our own signatures with the example key verify, and are not ECDSA.
	own, err := signMessage(SM2SM3, priv, msg)
	must(t, err)
	if !verifyMessage(pub, msg, own) {
		t.Error("a signature made here with the example key does not verify")
	}
}

func equalBytes(a, b []byte) bool { return hex.EncodeToString(a) == hex.EncodeToString(b) }

// TestSM2NeedsSM3 refuses an SM2 signature over SHA-256 digests, and a
// statement whose sm3 root does not match.
func TestSM2NeedsSM3(t *testing.T) {
	ctx := context.Background()
	key := newKeyOf(t, SM2SM3)
	s := mustSigner(t, key)
	v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{pubOf(key)}})
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "w.onnx"), []byte("weights"), 0o644))

	_, payload, err := buildStatement(ctx, dir, HashSHA256, SignOptions{})
	must(t, err)
	data, err := s.signPayload(ctx, payload)
	must(t, err)
	_, err = v.Verify(ctx, dir, data, VerifyOptions{})
	wantReason(t, err, modelrepo.ReasonSignatureInvalid)

	_, payload, err = buildStatement(ctx, dir, HashSM3, SignOptions{})
	must(t, err)
	var w map[string]any
	must(t, json.Unmarshal(payload, &w))
	w["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sm3": hex.EncodeToString(make([]byte, 32))}
	payload, err = json.Marshal(w)
	must(t, err)
	data, err = s.signPayload(ctx, payload)
	must(t, err)
	_, err = v.Verify(ctx, dir, data, VerifyOptions{})
	wantReason(t, err, modelrepo.ReasonSignatureInvalid)
}
