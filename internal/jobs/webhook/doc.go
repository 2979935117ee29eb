// Package webhook signs, verifies and delivers job webhooks: the Standard
// Webhooks headers and HMAC, and the senders that claim deliveries from
// the job store's outbox and send them with retries and backoff, several
// at once but only a few to any one receiver, reaching only the
// addresses its policy allows (checked on the address dialled, after
// DNS).
package webhook
