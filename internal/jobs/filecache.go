package jobs

import (
	"fmt"
	"os"
	"sync"
)

// fileCache keeps input files written out to a directory (PDFs, for the
// renderer), keyed by job and item, so the runners working through one
// document's pages write it once. Files in use are never removed; of the
// others, the least recently used go beyond max.
type fileCache struct {
	dir string
	max int

	mu    sync.Mutex
	files map[string]*cachedFile
	clock uint64
}

type cachedFile struct {
	job   string
	path  string
	err   error
	ready chan struct{} // closed once path or err is set
	refs  int
	used  uint64
	// dead: forgotten while in use; removed by its last release.
	dead bool
}

func newFileCache(dir string, max int) *fileCache {
	return &fileCache{dir: dir, max: max, files: map[string]*cachedFile{}}
}

// open returns the path of job's file item, written from load if it is
// not there yet; release when done with it.
func (c *fileCache) open(job string, item int, load func() ([]byte, error)) (string, func(), error) {
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
			f.path, f.err = writeTemp(c.dir, data)
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
		return "", nil, f.err
	}
	return f.path, func() { c.release(f) }, nil
}

func (c *fileCache) release(f *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f.refs--
	c.clock++
	f.used = c.clock
	if f.dead && f.refs == 0 {
		os.Remove(f.path)
	}
	c.evictLocked()
}

// evictLocked removes the least recently used unused files beyond max.
func (c *fileCache) evictLocked() {
	for {
		var oldest string
		idle := 0
		for k, f := range c.files {
			if f.refs > 0 {
				continue
			}
			idle++
			if oldest == "" || f.used < c.files[oldest].used {
				oldest = k
			}
		}
		if idle <= c.max {
			return
		}
		os.Remove(c.files[oldest].path)
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
			os.Remove(f.path)
		} else {
			f.dead = true
		}
	}
}

// writeTemp writes data to a new file in dir.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, "doc-*.pdf")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
