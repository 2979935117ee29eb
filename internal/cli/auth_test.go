package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
)

func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

func TestAuthHashKey(t *testing.T) {
	out, _, code := runMain(t, "auth", "hash-key")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, %q", code, out)
	}
	key, hash := strings.TrimPrefix(lines[0], "key:  "), strings.TrimPrefix(lines[1], "hash: ")
	if !strings.HasPrefix(key, auth.KeyPrefix) || auth.HashKey(key) != hash {
		t.Fatalf("key %q does not hash to %q", key, hash)
	}
	// The printed pair works in a configuration.
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{{Name: "x", Hash: hash, Scopes: []string{"infer"}}}}, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Check(auth.Credential{APIKey: key}, auth.ScopeInfer); err != nil {
		t.Fatal(err)
	}

	// --stdin hashes a given key; short ones are refused.
	for _, tc := range []struct {
		in   string
		code int
		want string
	}{
		{"abcdefghijklmnopqrstuvwxyz0123\n", 0, auth.HashKey("abcdefghijklmnopqrstuvwxyz0123") + "\n"},
		{"short\n", 1, ""},
	} {
		r, w, _ := os.Pipe()
		w.WriteString(tc.in)
		w.Close()
		old := os.Stdin
		os.Stdin = r
		out, errOut, code := runMain(t, "auth", "hash-key", "--stdin")
		os.Stdin = old
		if code != tc.code || out != tc.want {
			t.Errorf("--stdin %q: exit %d, %q %q", tc.in, code, out, errOut)
		}
	}
	if _, _, code := runMain(t, "auth", "hash-key", "vsk_on_the_command_line"); code != 2 {
		t.Errorf("a key as an argument: exit %d", code)
	}
	if _, _, code := runMain(t, "auth"); code != 2 {
		t.Errorf("no subcommand: exit %d", code)
	}
}

func TestAuthWebhookSecret(t *testing.T) {
	out, _, code := runMain(t, "auth", "webhook-secret")
	key, err := webhook.ParseSecret(strings.TrimSpace(out))
	if code != 0 || err != nil || len(key) != 32 {
		t.Fatalf("exit %d, %q: %v", code, out, err)
	}
}
