package tesstest_test

import (
	"bytes"
	"testing"

	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/engine/tesseract/tesstest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
)

// Every corruption leaves a structurally valid file (the server's own
// container check accepts it: it is the content that hurts) that differs
// from the original.
func TestCorruptionsKeepTheStructure(t *testing.T) {
	eng := repotest.Tessdata(t)["eng.traineddata"]
	for _, c := range tesstest.Corruptions() {
		bad, err := tesstest.Corrupt(eng, c)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if bytes.Equal(bad, eng) {
			t.Errorf("%s changed nothing", c)
		}
		if err := tesseract.CheckTraineddata(bad); err != nil {
			t.Errorf("%s: not structurally valid: %v", c, err)
		}
	}
}
