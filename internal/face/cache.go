package face

import (
	"container/list"
	"slices"
	"sync"
)

// analysisCache remembers what the pipeline found in recent images, keyed
// by the model and the SHA-256 of the image bytes, so the same image sent
// again (a retry, a verify against many, an enroll then an identify) costs
// neither detection nor the embeddings already computed. Entries are
// immutable; a request that computes more embeddings stores a new entry.
// Least recently used entries go first once it holds max entries.
type analysisCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent; values are *cacheEntry
	byKey map[string]*list.Element
}

type cacheEntry struct {
	key string
	a   *Analysis // Faces only; no image
}

func newAnalysisCache(max int) *analysisCache {
	return &analysisCache{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *analysisCache) get(key string) *Analysis {
	if c == nil || c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	a := e.Value.(*cacheEntry).a
	// The caller may fill in embeddings: give it its own slice.
	return &Analysis{Width: a.Width, Height: a.Height, Faces: slices.Clone(a.Faces)}
}

func (c *analysisCache) put(key string, a *Analysis) {
	if c == nil || c.max <= 0 {
		return
	}
	stored := &Analysis{Width: a.Width, Height: a.Height, Faces: slices.Clone(a.Faces)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		e.Value.(*cacheEntry).a = stored
		c.order.MoveToFront(e)
		return
	}
	c.byKey[key] = c.order.PushFront(&cacheEntry{key: key, a: stored})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byKey, old.Value.(*cacheEntry).key)
	}
}

func (c *analysisCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
