package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/testenv"
)

// runModelCmd calls runModel and returns its exit status and output.
func runModelCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runModel(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// modelOK runs a command that must succeed.
func modelOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runModelCmd(t, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("model %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

// modelFails runs a command that must exit 1 with one stderr line naming
// the reason.
func modelFails(t *testing.T, reason string, args ...string) string {
	t.Helper()
	code, _, errOut := runModelCmd(t, args...)
	prefix := "visionserve model " + args[0] + ": " + reason
	if code != 1 || !strings.HasPrefix(errOut, prefix) || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
		t.Fatalf("model %s: exit %d, stderr %q; want exit 1 and one line starting %q", strings.Join(args, " "), code, errOut, prefix)
	}
	return errOut
}

func writeModelDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo", "ocr-eng", "3")
	if err := os.MkdirAll(filepath.Join(dir, "tessdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"tessdata/eng.traineddata": "pretend LSTM weights",
		"README":                   "English OCR\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestModelKeyRoundTrip runs keygen, pack, sign, verify and inspect, and
// the tamper and trust failures, for an ECDSA and an SM2 key.
func TestModelKeyRoundTrip(t *testing.T) {
	for _, alg := range []string{"ecdsa-p256", "sm2"} {
		t.Run(alg, func(t *testing.T) { testModelKeyRoundTrip(t, alg) })
	}
}

func testModelKeyRoundTrip(t *testing.T, alg string) {
	keys := filepath.Join(t.TempDir(), "keys")
	out := modelOK(t, "keygen", "--out", keys, "--alg", alg)
	priv, pub := filepath.Join(keys, "private.pem"), filepath.Join(keys, "public.pem")
	if !strings.Contains(out, priv) || !strings.Contains(out, pub) || !strings.Contains(out, "key id:") || !strings.Contains(out, "algorithm:   "+alg) {
		t.Errorf("keygen output %q", out)
	}
	if st, err := os.Stat(priv); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", st, err)
	}
	keyID := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	hash := "sha256" // of the signed statement
	if alg == "sm2" {
		hash = "sm3"
	}

	dir := writeModelDir(t)
	out = modelOK(t, "pack", "--name", "ocr-eng", "--version", "3", "--kind", "ocr-tesseract", "--runtime", `{"lang": "eng", "psm": 6}`, dir)
	if !strings.Contains(out, "packed ocr-eng version 3 (ocr-tesseract): 2 files") {
		t.Errorf("pack output %q", out)
	}
	out = modelOK(t, "sign", "--key", priv, dir)
	if !strings.Contains(out, "signed ocr-eng version 3") || !strings.Contains(out, keyID) {
		t.Errorf("sign output %q", out)
	}
	// Flags after the directory work too.
	out = modelOK(t, "verify", dir, "--key", pub)
	if !strings.Contains(out, "verified ocr-eng version 3 (ocr-tesseract): 2 files, signed by key "+keyID) {
		t.Errorf("verify output %q", out)
	}
	out = modelOK(t, "inspect", dir)
	for _, want := range []string{"name:", "ocr-eng", "version:", "3", "kind:", "ocr-tesseract", `{"lang":"eng","psm":6}`, "tessdata/eng.traineddata", "signature:", "key", keyID, "signed files:", "3, manifest.json included (files, " + hash + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// Tampering and trust failures, each with its reason on one line.
	otherKeys := filepath.Join(t.TempDir(), "other")
	modelOK(t, "keygen", "--out", otherKeys, "--alg", alg)
	modelFails(t, "untrusted_key", "verify", "--key", filepath.Join(otherKeys, "public.pem"), dir)
	// Trusting both keys still verifies.
	modelOK(t, "verify", "--key", filepath.Join(otherKeys, "public.pem"), "--key", pub, dir)

	w := filepath.Join(dir, "tessdata", "eng.traineddata")
	data, _ := os.ReadFile(w)
	data[0] ^= 0xff
	if err := os.WriteFile(w, data, 0o644); err != nil {
		t.Fatal(err)
	}
	msg := modelFails(t, "digest_mismatch: tessdata/eng.traineddata: expected "+hash+":", "verify", "--key", pub, dir)
	if !strings.Contains(msg, ", got "+hash+":") {
		t.Errorf("mismatch message lacks the actual digest: %q", msg)
	}
	// A stale manifest is not signed either.
	modelFails(t, "digest_mismatch", "sign", "--key", priv, dir)

	if err := os.Remove(filepath.Join(dir, "model.sig")); err != nil {
		t.Fatal(err)
	}
	modelFails(t, "unsigned", "verify", "--key", pub, dir)
	out = modelOK(t, "inspect", dir)
	if !strings.Contains(out, "signature: none") {
		t.Errorf("inspect of an unsigned package: %q", out)
	}
}

// writeTestPKI writes a root CA, an intermediate and a code-signing leaf (with
// its key) as PEM files, valid from an hour ago for validFor.
func writeTestPKI(t *testing.T, dir string, validFor time.Duration) (rootPEM, chainPEM, leafPEM, keyPEM string) {
	t.Helper()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	var n int64
	create := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		n++
		tmpl.SerialNumber = big.NewInt(n)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, interKey, leafKey := newKey(), newKey(), newKey()
	rootTmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "Example Models Root CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	root := create(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	inter := create(&x509.Certificate{
		Subject: pkix.Name{CommonName: "Example Models Signing CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(180 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, root, &interKey.PublicKey, rootKey)
	leaf := create(&x509.Certificate{
		Subject: pkix.Name{CommonName: "ocr team", Organization: []string{"Example"}}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validFor),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}, inter, &leafKey.PublicKey, interKey)

	write := func(name string, blocks ...*pem.Block) string {
		var b bytes.Buffer
		for _, blk := range blocks {
			if err := pem.Encode(&b, blk); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		write("chain.pem", &pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}),
		write("signer.pem", &pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		write("signer-key.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func TestModelCertificateRoundTrip(t *testing.T) {
	pki := t.TempDir()
	ca, chain, cert, key := writeTestPKI(t, pki, 30*24*time.Hour)
	dir := writeModelDir(t)
	modelOK(t, "pack", "--name", "ocr-eng", "--version", "3", "--kind", "ocr-tesseract", dir)
	out := modelOK(t, "sign", "--key", key, "--cert", cert, "--chain", chain, dir)
	if !strings.Contains(out, "certificate CN=ocr team,O=Example") {
		t.Errorf("sign output %q", out)
	}
	out = modelOK(t, "verify", "--ca", ca, dir)
	if !strings.Contains(out, "signed by certificate CN=ocr team,O=Example issued by CN=Example Models Root CA") {
		t.Errorf("verify output %q", out)
	}
	out = modelOK(t, "inspect", dir)
	for _, want := range []string{"signature:", "certificate", "subject:", "CN=ocr team,O=Example", "issuer:", "CN=Example Models Signing CA", "valid:", "digitalSignature, codeSigning", "2 certificate(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// A CA that did not issue the chain, and a key instead of a CA.
	otherCA, _, _, _ := writeTestPKI(t, t.TempDir(), time.Hour)
	modelFails(t, "cert_invalid", "verify", "--ca", otherCA, dir)
	keys := filepath.Join(t.TempDir(), "keys")
	modelOK(t, "keygen", "--out", keys)
	modelFails(t, "cert_invalid", "verify", "--key", filepath.Join(keys, "public.pem"), dir)

	// A leaf that expired a minute ago (NotBefore an hour ago).
	expired := t.TempDir()
	_, eChain, eCert, eKey := writeTestPKI(t, expired, -time.Minute)
	eCA := filepath.Join(expired, "ca.pem")
	modelOK(t, "sign", "--key", eKey, "--cert", eCert, "--chain", eChain, dir)
	modelFails(t, "cert_expired", "verify", "--ca", eCA, dir)
}

func TestModelUsage(t *testing.T) {
	dir := writeModelDir(t)
	usage := [][]string{
		{},
		{"frobnicate"},
		{"keygen"},
		{"keygen", "--out"},
		{"keygen", "--out", t.TempDir(), "extra"},
		{"keygen", "--out", t.TempDir(), "--alg", "rsa"},
		{"pack", dir},
		{"pack", "--name", "x", "--kind", "onnx", dir},
		{"pack", "--name", "x", "--version", "0", "--kind", "onnx", dir},
		{"pack", "--name", "x", "--version", "one", "--kind", "onnx", dir},
		{"pack", "--name", "X Y", "--version", "1", "--kind", "onnx", dir},
		{"pack", "--name", "x", "--version", "1", "--kind", "tensorflow", dir},
		{"pack", "--name", "x", "--version", "1", "--kind", "onnx", "--runtime", "[1]", dir},
		{"pack", "--name", "x", "--version", "1", "--kind", "onnx"},
		{"pack", "--name", "x", "--version", "1", "--kind", "onnx", dir, dir},
		{"sign", dir},
		{"sign", "--key", "k.pem", "--chain", "c.pem", dir},
		{"verify", dir},
		{"verify", "--bogus", dir},
		{"inspect"},
	}
	for _, args := range usage {
		code, out, errOut := runModelCmd(t, args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "visionserve model") {
			t.Errorf("model %q: exit %d, stdout %q, stderr %q; want exit 2 and one stderr line", args, code, out, errOut)
		}
	}
	for _, verb := range []string{"keygen", "pack", "sign", "verify", "inspect"} {
		code, out, errOut := runModelCmd(t, verb, "-h")
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: visionserve model "+verb) {
			t.Errorf("model %s -h: exit %d, stdout %q, stderr %q", verb, code, out, errOut)
		}
	}
	if code, out, _ := runModelCmd(t, "-h"); code != 0 || !strings.Contains(out, "keygen") || !strings.Contains(out, "inspect") {
		t.Errorf("model -h: exit %d, %q", code, out)
	}
	// Failures that are not usage errors exit 1.
	modelFails(t, "manifest_invalid", "inspect", dir)
	modelFails(t, "", "sign", "--key", filepath.Join(t.TempDir(), "missing.pem"), dir)
	modelFails(t, "trusted key", "verify", "--key", filepath.Join(t.TempDir(), "missing.pem"), dir)
}

// modelShimEnv makes this test binary act as "visionserve model ..." (see
// TestModelShim), so TestDocsCommands can run the documentation's shell
// commands before the real dispatcher exists.
const modelShimEnv = "VISIONSERVE_MODEL_SHIM"

// TestModelShim is not a test: it is the body of the "visionserve" command
// TestDocsCommands puts on PATH, in the manner of os/exec's helper
// process. Run directly, it skips.
func TestModelShim(t *testing.T) {
	if os.Getenv(modelShimEnv) != "1" {
		t.Skip("helper process for TestDocsCommands")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	if len(args) == 0 || (args[0] != "model" && args[0] != "keys") {
		os.Stderr.WriteString("visionserve (test shim): only 'model' and 'keys' commands are available\n")
		os.Exit(2)
	}
	os.Exit(Main(context.Background(), args, os.Stdout, os.Stderr))
}

// TestDocsCommands runs every ```sh block of docs/model-packages.md, in
// order, as one bash script (set -euo pipefail) in an empty directory
// holding eng.traineddata, with "visionserve" on PATH. A documented
// command that does not work fails the test.
func TestDocsCommands(t *testing.T) {
	work := t.TempDir()
	// Stand-ins for the shared face models the face section packs.
	shared := filepath.Join(t.TempDir(), "shared")
	faces := filepath.Join(shared, "models", "face")
	if err := os.MkdirAll(faces, 0o755); err != nil {
		t.Fatal(err)
	}
	weights := docsWeights(t, work)
	for _, f := range []string{"yunet_s_dynamic.onnx", "LICENSE.ShiqiYu-libfacedetection.train", "MobileFaceNet.onnx", "LICENSE.foamliu-MobileFaceNet"} {
		if err := os.WriteFile(filepath.Join(faces, f), append([]byte(f), weights[:1024]...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runDocsCommands(t, "model-packages.md", work, 5, "VISIONSERVE_SHARED="+shared)
	// The tutorial ends with versions 1 and 3 published, 2 retired.
	for _, v := range []string{"1", "3", ".retired-2"} {
		if _, err := os.Stat(filepath.Join(work, "models", "ocr-eng", v, "model.sig")); err != nil {
			t.Errorf("after the tutorial: %v", err)
		}
	}
	for _, dir := range []string{"face-detect-1", "face-embed-1"} {
		if _, err := os.Stat(filepath.Join(work, "build", dir, "model.sig")); err != nil {
			t.Errorf("face packages after the tutorial: %v", err)
		}
	}
	code, stdout, stderr := runModelCmd(t, "verify", "--key", filepath.Join(work, "keys", "public.pem"), filepath.Join(work, "models", "ocr-eng", "3"))
	if code != 0 || !strings.Contains(stdout, "verified ocr-eng version 3") {
		t.Errorf("republished version: exit %d %s%s", code, stdout, stderr)
	}
}

// TestRegulatedDocsCommands runs the ```sh blocks of docs/regulated.md:
// an SM2 key and an OpenSSL-made SM2 certificate chain sign a package,
// and a vendor's RSA-PSS zip is imported and re-signed with the SM2 key.
func TestRegulatedDocsCommands(t *testing.T) {
	work := t.TempDir()
	docsWeights(t, work)
	runDocsCommands(t, "regulated.md", work, 4)
	code, stdout, stderr := runModelCmd(t, "verify", "--key", filepath.Join(work, "sm2-keys", "public.pem"), filepath.Join(work, "models", "ocr-eng-vendor", "1"))
	if code != 0 || !strings.Contains(stdout, "(sm2-sm3)") {
		t.Errorf("imported version: exit %d %s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runModelCmd(t, "verify", "--ca", filepath.Join(work, "ca.pem"), filepath.Join(work, "build", "ocr-eng-1"))
	if code != 0 || !strings.Contains(stdout, "certificate CN=ocr team,O=Example issued by CN=Models Root CA") {
		t.Errorf("certificate-signed version: exit %d %s%s", code, stdout, stderr)
	}
}

// docsWeights writes a stand-in eng.traineddata into work and returns its
// bytes.
func docsWeights(t *testing.T, work string) []byte {
	t.Helper()
	weights := make([]byte, 64<<10)
	if _, err := rand.Read(weights); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "eng.traineddata"), weights, 0o644); err != nil {
		t.Fatal(err)
	}
	return weights
}

// runDocsCommands runs every ```sh block of docs/<doc>, in order, as one
// bash script (set -euo pipefail) in work, with this test binary as
// "visionserve" on PATH (TestModelShim) and env added. It fails the test
// when the doc has fewer than minBlocks blocks or a command fails.
func runDocsCommands(t *testing.T, doc, work string, minBlocks int, env ...string) {
	t.Helper()
	for _, tool := range []string{"bash", "openssl", "cp", "mv", "sha256sum", "zip"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" is not installed (hack/setup.sh): "+err.Error())
		}
	}
	text, err := os.ReadFile(filepath.Join("..", "..", "docs", doc))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	blocks := 0
	in := false
	for _, line := range strings.Split(string(text), "\n") {
		switch {
		case !in && line == "```sh":
			in = true
			blocks++
			fmt.Fprintf(&script, "echo '--- block %d'\n", blocks)
		case in && line == "```":
			in = false
		case in:
			script.WriteString(line + "\n")
		}
	}
	if blocks < minBlocks || in {
		t.Fatalf("%s: found %d sh blocks (unterminated: %v)", doc, blocks, in)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	shim := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q -test.run='^TestModelShim$' -- \"$@\"\n", modelShimEnv, self)
	if err := os.WriteFile(filepath.Join(bin, "visionserve"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH")), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("documented commands of %s failed: %v\n%s", doc, err, out)
	}
	t.Logf("documented commands of %s:\n%s", doc, out)
}
