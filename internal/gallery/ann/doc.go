// Package ann searches unit vectors by cosine similarity: Flat is exact
// (every vector compared), HNSW is approximate (Malkov and Yashunin's
// hierarchical navigable small world graph, with the neighbour-selection
// heuristic and hnswlib's locking for parallel builds).
//
// Both keep their vectors in one flat float32 arena addressed by a dense
// uint32 id, remove by tombstone, and report similarities as dot products
// (vectors must be unit length). Neither is safe for concurrent mutation:
// callers hold a write lock around Add and Delete and may Search from many
// goroutines under a read lock. HNSW.Build is the one parallel operation,
// and it owns the graph while it runs.
//
// The package never persists anything: the gallery store is the source of
// truth and indexes are rebuilt from it.
package ann
