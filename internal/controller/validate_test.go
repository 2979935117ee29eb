package controller

import (
	"strings"
	"testing"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
)

// validate refuses only what would keep every pod from starting.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		args   []string
		want   string // "" valid
	}{
		{"api keys", "auth:\n  api_keys: []\n", nil, ""},
		{"auth turned off in the config", "auth: {disabled: true}\n", nil, ""},
		{"--no-auth", "", []string{"--log-format", "json", "--no-auth"}, ""},
		{"--no-auth=true", "server: {queue: 8}\n", []string{"--no-auth=true"}, ""},
		{"no credentials", "server: {queue: 8}\n", nil, "refuses to start without credentials"},
		{"no config, no flag", "", []string{"--no-auth=false"}, "refuses to start without credentials"},
		{"not YAML", "[unclosed", []string{"--no-auth"}, "not a YAML mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := &v1alpha1.VisionService{Spec: v1alpha1.VisionServiceSpec{Server: v1alpha1.ServerSpec{Config: tc.config, Args: tc.args}}}
			err := validate(vs)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}
