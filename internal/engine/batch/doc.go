// Package batch runs a model on several requests at once (dynamic
// batching): requests whose inputs differ only in their first, batch
// dimension are joined along it, run once, and the outputs are split back.
//
// A Batcher respects two bounds besides its own: every run of a batch holds
// one worker of the process-wide scheduler for as long as it runs (requests
// waiting to be batched hold none), and every request keeps its own
// deadline and cancellation: a request whose context ends while it waits
// leaves the queue at once and is never run; one whose context ends while
// its batch runs gets its error at once, and a batch whose requests have
// all gone is cancelled. A request waits at most MaxQueueDelay for others
// to join it before its batch is dispatched.
//
// The package never runs a batch on a model whose inputs and outputs do not
// all have a variable first dimension: that is checked when a Batcher is
// built, not discovered on a request.
package batch
