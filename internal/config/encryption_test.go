package config

import (
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/keys"
)

func TestEncryption(t *testing.T) {
	if Default().Encryption.Enabled() {
		t.Fatal("encryption on by default")
	}
	c, err := Load("testdata/encryption.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Encryption; e.Algorithm != keys.SM4GCM || e.KEKFile != "/run/secrets/visionserve-kek" || e.KEKEnv != "" || !e.Enabled() {
		t.Fatalf("encryption %+v", e)
	}
	_, err = Load("testdata/bad-encryption.yaml")
	for _, w := range []string{`encryption: algorithm "des-ede3": use aes-256-gcm or sm4-gcm`, "set kek_file or kek_env, not both"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bad encryption: error does not mention %q: %v", w, err)
		}
	}
	for _, tc := range []struct {
		yaml string
		want string // "" = valid
	}{
		{"encryption: {kek_env: VISIONSERVE_KEK}", ""},
		{"encryption: {algorithm: aes-256-gcm, kek_file: /k}", ""},
		{"encryption: {algorithm: sm4-gcm}", "no key-encryption key is"},
		// The key itself never goes in the file: there is no key for it.
		{"encryption: {kek: q83vEjRWeJCrze8SNFZ4kA==}", "field kek not found"},
		{"encryption: {kek_env: q83vEjRWeJCrze8SNFZ4kA==}", "never the key"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "q83vEjRWeJCrze8SNFZ4kA==") && !strings.Contains(tc.yaml, "kek:") {
			t.Errorf("%s: the error shows the key: %v", tc.yaml, err)
		}
	}
}
