package failure_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/keys"
)

// fullDisk mounts a tmpfs of size bytes for the test and returns its
// directory. Mounting needs root (CAP_SYS_ADMIN); without it the test is
// skipped.
func fullDisk(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("mounting a small tmpfs needs root: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// An enroll into an embedded gallery on a full disk is a 507 (gRPC
// ResourceExhausted), not a 500, and the faces stored before it stay.
func TestGalleryOnFullDisk(t *testing.T) {
	ctx := context.Background()
	store, err := gallery.OpenBolt(filepath.Join(fullDisk(t, 256<<10), "galleries.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	staff := gallery.Ref{Tenant: "acme", Name: "staff"}
	if _, _, err := store.CreateGallery(ctx, staff, time.Now()); err != nil {
		t.Fatal(err)
	}
	stored := 0
	for ; stored < 10000; stored++ {
		f := gallery.Face{ID: fmt.Sprintf("f%05d", stored), Gallery: staff, Subject: "alice", Model: "m", Embedding: make([]float32, 512), Created: time.Now()}
		if _, err = store.AddFace(ctx, f); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatalf("stored %d faces on a 256 KiB disk without an error", stored)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the store's error %v does not say the disk is full", err)
	}
	c, ok := failure.Classify(err)
	if !ok || c.Status != http.StatusInsufficientStorage || c.Code != codes.ResourceExhausted || c.Kind != "insufficient-storage" {
		t.Fatalf("a full disk is classified %+v, %v", c, ok)
	}
	faces, err := store.Faces(ctx, staff, "alice")
	if err != nil || len(faces) != stored {
		t.Fatalf("after the full disk: %d faces, %v; %d were stored", len(faces), err, stored)
	}
}
