package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/keys"
)

// The rotation procedure through the CLI, on an embedded job store that
// was in clear and a review store: keys new makes KEKs; status reads the
// stores; rotate makes a new data key, re-wraps the keyrings under a new
// KEK and seals every record (the clear one included) under the active
// key; afterwards the old KEK is refused in one line and every record
// reads back.
func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	jobsDir := filepath.Join(dir, "jobs")
	newKEK := func(name string, args ...string) string {
		t.Helper()
		out, errOut, code := runMain(t, append([]string{"keys", "new"}, args...)...)
		if code != 0 {
			t.Fatalf("keys new: %d %s", code, errOut)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	kek1, kek2 := newKEK("kek1"), newKEK("kek2", "--alg", "sm4-gcm")
	config := func(kek string) string {
		t.Helper()
		path := filepath.Join(dir, filepath.Base(kek)+".yaml")
		yaml := "jobs: {dir: " + jobsDir + "}\nreviews: {path: " + filepath.Join(dir, "reviews.db") + "}\n" +
			"encryption: {algorithm: sm4-gcm, kek_file: " + kek + "}\n"
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg1, cfg2 := config(kek1), config(kek2)

	// A job stored in clear, then one sealed once encryption is on.
	put := func(enc keys.Config, input string) string {
		t.Helper()
		s, err := store.OpenBolt(jobsDir, store.Options{Keys: enc})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		now := time.Now()
		j := &store.Job{ID: store.NewID("job_"), Owner: "key:a", Tenant: "acme", Tasks: 1, PagesTotal: 1, InputBytes: 10,
			Fingerprint: "fp", Created: now, Updated: now, Plan: []byte(`{}`)}
		if _, err := s.Create(context.Background(), j, [][]byte{[]byte(input)}, store.Limits{}); err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	load := func(path string) keys.Config {
		t.Helper()
		c, err := keys.Settings{Algorithm: keys.SM4GCM, KEKFile: path}.Load()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Large enough for pages of its own, which bbolt frees on
	// re-encryption without clearing them.
	clearInput := strings.Repeat("clear input ", 1000)
	clearID := put(keys.Config{}, clearInput)
	sealedID := put(load(kek1), "sealed input")

	keysRun := func(want int, args ...string) string {
		t.Helper()
		out, errOut, code := runMain(t, append([]string{"keys"}, args...)...)
		if code != want {
			t.Fatalf("keys %v: exit %d, want %d: %s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}
	if out := keysRun(0, "status", "--config", cfg1); !strings.Contains(out, "jobs: records: 1 in clear, 1 under data key 1") ||
		!strings.Contains(out, "may be in clear") {
		t.Fatalf("status:\n%s", out)
	}
	keysRun(2, "rotate", "--config", cfg1) // nothing asked
	out := keysRun(0, "rotate", "--config", cfg1, "--data-key", "--new-kek-file", kek2, "--reencrypt")
	for _, want := range []string{"jobs: new data key 2 (sm4-gcm) is active", "re-wrapped under key-encryption key", "jobs: records: 2 under data key 2 (2 sealed anew)",
		"reviews: new data key 2 (sm4-gcm) is active", "reviews: records: none (0 sealed anew)", "reviews.db compacted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate: no %q in\n%s", want, out)
		}
	}
	out = keysRun(1, "status", "--config", cfg1)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, "wrong key-encryption key") {
		t.Fatalf("the old KEK after rotation:\n%s", out)
	}
	if out := keysRun(0, "status", "--config", cfg2); !strings.Contains(out, "data key 2 of 2") || strings.Contains(out, "in clear") {
		t.Fatalf("status after rotation:\n%s", out)
	}

	s, err := store.OpenBolt(jobsDir, store.Options{Keys: load(kek2)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range map[string]string{clearID: clearInput, sealedID: "sealed input"} {
		if got, err := s.Input(context.Background(), id, 0); err != nil || string(got) != want {
			t.Fatalf("job %s after rotation: %.20q %v", id, got, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(jobsDir, "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"clear input", "sealed input"} {
		if bytes.Contains(raw, []byte(b)) {
			t.Fatalf("the job database holds %q after re-encryption", b)
		}
	}
}

// keys new makes a KEK of each algorithm; an unknown one is refused.
func TestKeysNew(t *testing.T) {
	for alg, size := range map[string]int{"aes-256-gcm": 32, "sm4-gcm": 16} {
		out, _, code := runMain(t, "keys", "new", "--alg", alg)
		k, err := keys.ParseKEK(out, "stdout")
		if code != 0 || err != nil || k.Algorithm() != keys.Algorithm(alg) || len(strings.TrimSpace(out)) != (size+2)/3*4 {
			t.Fatalf("%s: exit %d, %q, %v", alg, code, out, err)
		}
	}
	if _, errOut, code := runMain(t, "keys", "new", "--alg", "des"); code != 1 || !strings.Contains(errOut, "unknown algorithm") {
		t.Fatalf("des: exit %d, %s", code, errOut)
	}
}

// serve's --kek-file and --encryption-algorithm turn encryption on as
// the file's encryption section does (the operator and the chart pass
// them, with the KEK mounted from a Secret), and override it.
func TestServeEncryptionFlags(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("encryption: {algorithm: aes-256-gcm, kek_file: /from-file}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want keys.Settings
	}{
		{nil, keys.Settings{}},
		{[]string{"--kek-file", "/run/kek/kek"}, keys.Settings{KEKFile: "/run/kek/kek"}},
		{[]string{"--kek-file", "/run/kek/kek", "--encryption-algorithm", "sm4-gcm"}, keys.Settings{Algorithm: keys.SM4GCM, KEKFile: "/run/kek/kek"}},
		{[]string{"--config", cfgFile, "--kek-file", "/run/kek/kek", "--encryption-algorithm", "sm4-gcm"}, keys.Settings{Algorithm: keys.SM4GCM, KEKFile: "/run/kek/kek"}},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		var f serverFlags
		f.register(fs, config.Default(), true)
		if err := fs.Parse(append(tc.args, "--no-auth")); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.load(fs)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.Encryption != tc.want {
			t.Errorf("%v: encryption %+v, want %+v", tc.args, cfg.Encryption, tc.want)
		}
	}
	// An algorithm without a KEK is refused, as in the file.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f serverFlags
	f.register(fs, config.Default(), true)
	if err := fs.Parse([]string{"--no-auth", "--encryption-algorithm", "sm4-gcm"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.load(fs); err == nil || !strings.Contains(err.Error(), "no key-encryption key") {
		t.Errorf("an algorithm without a KEK: %v", err)
	}
}
