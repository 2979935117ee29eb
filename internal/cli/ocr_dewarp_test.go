package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A --dewarp value outside its enum is a usage error: one line naming the
// choices and exit status 2, before any model is loaded.
func TestOCRDewarpFlag(t *testing.T) {
	var out, errb bytes.Buffer
	code := runOCR(context.Background(), []string{"--dewarp", "sideways", "page.png"}, &out, &errb)
	if code != 2 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), `dewarp="sideways"; use auto, on or off`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
