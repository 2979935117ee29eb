package config

import (
	"strings"
	"testing"
)

func TestJobsStore(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // "" = valid
	}{
		{"jobs: {dir: /var/lib/jobs}", ""},
		{"jobs: {store: postgres, postgres: 'postgres://visionserve@db/visionserve'}", ""},
		{"jobs: {store: postgres, postgres_file: /run/secrets/jobs-dsn}", ""},
		{"jobs: {store: postgres}", "set one of postgres"},
		{"jobs: {store: postgres, postgres: 'host=db', postgres_file: /f}", "set one of postgres"},
		{"jobs: {store: postgres, postgres: 'postgres://u:secret@db/x'}", "jobs.postgres holds a password"},
		{"jobs: {store: postgres, postgres: 'host=db password=secret'}", "jobs.postgres holds a password"},
		{"jobs: {store: etcd, dir: /x}", `store "etcd"`},
		{"jobs: {dir: /x, lease: 1s}", "lease 1s is below 3s"},
		{"jobs: {dir: /x, max_kept_bytes: 0}", ""},
		{"jobs: {dir: /x, max_kept_bytes: 512MiB, tenant: {max_kept_bytes: 1GiB}}", ""},
		{"jobs: {dir: /x, tenant: {max_kept_bytes: 0}}", "tenant.max_kept_bytes must be positive"},
	} {
		c, err := Parse([]byte(tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
	}
}
