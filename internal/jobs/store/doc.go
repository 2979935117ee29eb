// Package store keeps asynchronous jobs: their records, inputs, per-page
// results, the work still to do (tasks, claimed under leases) and the
// webhook outbox. It has two implementations behind the same verbs: Bolt,
// an embedded bbolt file for one process, and Postgres, shared by every
// replica that points at the same database.
//
// Every state change is one transaction: a task's pages are recorded with
// the progress they add and, when they are the job's last, with the job's
// final state and its webhook (an outbox record). So a job is never
// finished without its notification, and a task's pages appear exactly
// once however many times it ran (a lease that expired, a replica killed
// after the work but before recording it).
//
// Work is handed out by Claim under a lease: a task runs on one worker at
// a time, and a worker that dies (SIGKILL, a lost node) loses its leases
// when they expire, after which another worker claims the task again.
// Claims are fair across tenants: the tenant with the fewest tasks
// running, then the one served least recently, goes first; within a
// tenant, the oldest job first.
//
// The store interprets no payload: inputs and page results are bytes that
// pass through one seam, Codec, on their way in and out (where encryption
// at rest belongs), and a job's plan (options, items, tasks) is opaque
// JSON. Only this package imports the database drivers.
package store
