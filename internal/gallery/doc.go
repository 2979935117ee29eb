// Package gallery owns face galleries: named sets of subjects, each with
// the embeddings of its enrolled faces. A Store keeps them durably (an
// embedded bbolt file on one machine, or PostgreSQL shared by replicas);
// a Manager keeps an in-memory vector index per gallery, rebuilt from the
// store at start, and answers identification searches from it.
//
// The store is the source of truth. The Manager changes its indexes only
// by applying the store's change events, in the store's order: with the
// embedded store right after each write, with PostgreSQL from the shared
// change log, which every replica follows (LISTEN/NOTIFY wakes it; a
// periodic poll bounds the delay when a notification is lost). A write is
// acknowledged only after the store committed it, so an answered enroll
// survives a crash.
//
// Every face carries the id of the embedder that computed its vector. A
// gallery keeps one index per id and a search reads only the index of the
// query's id, so vectors of different embedders are never compared; a
// gallery takes new faces only of an id it already holds (any, when
// empty).
//
// Search is exact below a configured gallery size and approximate (HNSW,
// package ann) above it; indexes switch kind, and compact deleted entries,
// by rebuilding in the background while the old index keeps serving.
//
// Gallery and subject names are user input: the package validates them,
// never uses them as metric labels, and bounds how many galleries and faces
// it holds.
package gallery
