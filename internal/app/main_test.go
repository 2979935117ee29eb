package app_test

import (
	"testing"

	"github.com/visionserve/visionserve/internal/app/apptest"
)

// The servers of these tests check every repository version in a child
// process of this test binary, as visionserve does in one of its own.
func TestMain(m *testing.M) { apptest.Main(m) }
