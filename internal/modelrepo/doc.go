// Package modelrepo serves model versions from a repository directory
// (<dir>/<model>/<version>/) and swaps them without failing a request.
//
// It owns discovery (a filesystem watch, a periodic rescan and the admin
// calls), the version policy of each model (the newest N and/or listed
// versions), the load pipeline (verify -> load -> warm up -> publish),
// reference-counted version handles, routing (pinned versions, weighted
// splits, sticky keys), lifecycle events and the bounded failure reasons.
//
// The order of a load is the order of what can fail: the Verifier checks
// digests and signature (and the Loader its runtime options), the Checker
// loads and warms the version up in isolation (a child process: a model
// that crashes, hangs or exhausts its engine costs that process, not this
// one), a Loader registered for the package's kind builds the engines, the
// new Instance answers a sample input, and only then is the version
// published, with one atomic pointer store. A version that failed to load
// or warm up is remembered, by the digest of its files, across restarts
// (Options.StateDir): it is not tried again until its files change or an
// operator asks for it. Requests never wait
// on a load or a publish: they read the published routing table and take a
// reference on the version they route to, which keeps it loaded until the
// request ends. A replaced version leaves the table first, drains, and only
// then are its engines closed. Any failure leaves what is serving untouched
// and is recorded with a Reason.
//
// modelrepo never serves a version that its Verifier has not accepted, and
// never lets a version leave the routing table before another one is ready
// to take its traffic, unless nothing is left to replace it (the model's
// directories were removed, or an operator unloaded the last version).
//
// What serves is what was verified: a Loader reads model bytes only
// through Package.ReadFile, which checks each file's size and SHA-256
// against the verified manifest as it reads it, and builds its engines
// from those bytes, never from a path; a file replaced after verification
// (or after the isolated check, whose child loads with the same loaders)
// fails the load with ReasonDigestMismatch.
//
// Engines plug in by kind: a Loader turns a verified Package into an
// Instance, and the pipelines read their own engine type out of the
// Instance a Handle carries. modelrepo imports no engine, no pipeline and
// no signature code; those packages import it.
package modelrepo
