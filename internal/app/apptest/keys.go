package apptest

import (
	"testing"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
)

// Key describes an API key for WithKeys.
type Key struct {
	Name, Tenant string
	Scopes       []string
}

// WithKeys returns a mutate function for Start that turns authentication
// on with an API key per spec (besides Server.AdminKey), and the keys by
// name.
func WithKeys(t testing.TB, specs ...Key) (func(*config.Config), map[string]string) {
	t.Helper()
	keys := map[string]string{}
	var cfgKeys []auth.APIKey
	for _, k := range specs {
		key, hash, err := auth.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[k.Name] = key
		cfgKeys = append(cfgKeys, auth.APIKey{Name: k.Name, Hash: hash, Tenant: k.Tenant, Scopes: k.Scopes})
	}
	return func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.APIKeys = append(c.Auth.APIKeys, cfgKeys...)
	}, keys
}
