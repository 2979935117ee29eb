// Package ratelimit holds each principal to a request rate (a token
// bucket) and a number of requests in flight, refusing the excess with a
// Retry-After estimate instead of queueing it. Limits are chosen per
// tenant, with a default for everyone else.
//
// Memory is bounded: a principal's state is forgotten once its bucket is
// full again and it has nothing in flight (forgetting it then changes no
// decision), and the table of principals has a hard size. Metric labels
// are bounded too: configured tenant names, everything else "other".
package ratelimit
