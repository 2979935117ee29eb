// Package ctxio bounds long reads by a context: a copy of a large file
// (hashing a model, unpacking a zip) stops at the next read once its
// context is done.
package ctxio

import (
	"context"
	"io"
)

// NewReader returns r whose reads fail with ctx's error once ctx is done.
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return reader{ctx, r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
