// Package jobs runs OCR asynchronously over many images, multi-page TIFFs
// and PDFs: submission, persistence, execution, cancellation, retention
// and completion webhooks.
//
// Durability. Jobs, their inputs, each task's result and each pending
// webhook live in one embedded bbolt database. Every state change is one
// transaction: a task's result is written together with the progress it
// adds, so after a crash (even kill -9) a restarted server resumes each
// unfinished job at its first task without a result, and a task's pages
// appear in the result exactly once whether it ran once or twice. A job's
// completion and its webhook (an outbox record) commit together, so the
// webhook is delivered at least once; receivers de-duplicate on the
// delivery id.
//
// Capacity. Jobs call the same OCR core as synchronous requests, through
// the scheduler's Background runner: a job's page takes a worker only
// while no interactive request is waiting for one, at most Concurrency
// jobs run at once, and each runs one page at a time. Everything a client
// can make the server hold is bounded: items, pages and bytes per job,
// unfinished jobs, and stored input bytes.
//
// jobs never trusts a PDF: pages are rasterised by poppler's pdftoppm in a
// child process, one page per run, under a timeout and memory and file
// size limits, in a private temporary directory.
package jobs
