package jobs

import (
	"fmt"
	"sync"
)

// fileCache keeps PDFs copied into memory files for the renderer, keyed
// by job and item, so the runners working through one document's pages
// copy it once. Files in use are never closed; of the others, the least
// recently used go beyond max files or maxBytes in all (they are memory).
type fileCache struct {
	max      int
	maxBytes int64

	mu    sync.Mutex
	files map[string]*cachedFile
	clock uint64
}

type cachedFile struct {
	job   string
	doc   *PDFFile
	err   error
	ready chan struct{} // closed once doc or err is set
	refs  int
	used  uint64
	// dead: forgotten while in use; removed by its last release.
	dead bool
}

func newFileCache(max int, maxBytes int64) *fileCache {
	return &fileCache{max: max, maxBytes: maxBytes, files: map[string]*cachedFile{}}
}

// open returns job's file item, copied from load if it is not there yet;
// release when done with it.
func (c *fileCache) open(job string, item int, load func() ([]byte, error)) (*PDFFile, func(), error) {
	key := fmt.Sprintf("%s/%d", job, item)
	c.mu.Lock()
	f := c.files[key]
	if f == nil {
		f = &cachedFile{job: job, ready: make(chan struct{})}
		c.files[key] = f
		f.refs++
		c.mu.Unlock()
		var data []byte
		if data, f.err = load(); f.err == nil {
			f.doc, f.err = NewPDFFile(data)
		}
		close(f.ready)
	} else {
		f.refs++
		c.mu.Unlock()
		<-f.ready
	}
	if f.err != nil {
		c.mu.Lock()
		if c.files[key] == f {
			delete(c.files, key) // the next open tries again
		}
		f.refs--
		c.mu.Unlock()
		return nil, nil, f.err
	}
	return f.doc, func() { c.release(f) }, nil
}

func (c *fileCache) release(f *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f.refs--
	c.clock++
	f.used = c.clock
	if f.dead && f.refs == 0 {
		f.doc.Close()
	}
	c.evictLocked()
}

// evictLocked closes the least recently used unused files beyond max
// files or maxBytes.
func (c *fileCache) evictLocked() {
	for {
		var oldest string
		idle, bytes := 0, int64(0)
		for k, f := range c.files {
			if f.refs > 0 || f.doc == nil {
				continue
			}
			idle++
			bytes += f.doc.Size()
			if oldest == "" || f.used < c.files[oldest].used {
				oldest = k
			}
		}
		if idle == 0 || (idle <= c.max && bytes <= c.maxBytes) {
			return
		}
		c.files[oldest].doc.Close()
		delete(c.files, oldest)
	}
}

// forget removes job's files (those in use at their last release).
func (c *fileCache) forget(job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, f := range c.files {
		if f.job != job {
			continue
		}
		delete(c.files, k)
		if f.refs == 0 {
			f.doc.Close()
		} else {
			f.dead = true
		}
	}
}
