// Package webhook signs, verifies and delivers job webhooks: the Standard
// Webhooks headers and HMAC, and the delivery loop that sends an
// outbox's records with retries and backoff, reaching only the addresses
// its policy allows (checked on the address dialled, after DNS).
//
// It never reads the outbox's storage itself: the loop goes through the
// small Outbox interface its caller provides.
package webhook
