// Package jobs runs OCR asynchronously over many images, multi-page TIFFs
// and PDFs: submission, persistence, execution, cancellation, retention
// and completion webhooks.
//
// The parts. Manager is what the transports call. The store (package
// jobs/store: embedded bbolt, or PostgreSQL shared by replicas) keeps the
// jobs and is the only part that touches a database. inputs turns
// submitted files into planned tasks and a task into an OCR input (PDF
// pages rendered in a child process). queue claims tasks from the store
// and runs them under leases. The webhook deliverer (package
// jobs/webhook) sends the store's outbox.
//
// Durability. Every state change is one store transaction: a task's
// pages are written together with the progress they add, so after a crash
// (even kill -9) the unrecorded tasks are claimed again, and a task's
// pages appear in the result exactly once whether it ran once or twice. A
// job's completion and its webhook (an outbox record) commit together, so
// the webhook is delivered at least once; receivers de-duplicate on the
// delivery id.
//
// Capacity. Jobs call the same OCR core as synchronous requests, through
// the scheduler's Background runner: a job's page takes a worker only
// while no interactive request is waiting for one, and at most
// Concurrency tasks run at once in a process. Which task runs next is
// fair across tenants (the store decides, so it holds across replicas).
// Everything a client can make the server hold is bounded: items, pages
// and bytes per job, unfinished jobs and stored input bytes, in all and
// per tenant, and uploads being read.
//
// jobs never trusts a PDF: pages are rasterised by poppler's pdftoppm in a
// child process, one page per run, under a timeout and memory and file
// size limits, in a private temporary directory.
package jobs
