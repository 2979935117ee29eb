package config

import (
	"strings"
	"testing"
)

func TestConsoleSections(t *testing.T) {
	d := Default()
	if !d.UI.Enabled || d.Reviews.Enabled() || d.Reviews.Store != StoreEmbedded || d.Reviews.MaxPerTenant != 100_000 {
		t.Errorf("defaults: ui %+v reviews %+v", d.UI, d.Reviews)
	}
	c, err := Load("testdata/console.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The postgres store without a connection string of its own uses
	// the galleries' database.
	if c.UI.Enabled || !c.Reviews.Enabled() || c.ReviewsPostgres() != "postgres://visionserve@db/visionserve" || c.ReviewConfig().MaxPerTenant != 500 {
		t.Errorf("console.yaml: ui %+v reviews %+v", c.UI, c.Reviews)
	}
	_, err = Load("testdata/bad-console.yaml")
	for _, w := range []string{`reviews.store "sqlite"`, "reviews.max_per_tenant"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bad-console.yaml: error does not mention %q: %v", w, err)
		}
	}
	c = Default()
	c.Reviews.Store = StorePostgres
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "names a database") {
		t.Errorf("postgres without a database: %v", err)
	}
}
