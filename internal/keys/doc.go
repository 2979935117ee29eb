// Package keys encrypts records at rest: biometric templates in the
// gallery stores and job inputs and results in the job stores.
//
// Envelope encryption in two tiers. Records are sealed with an AEAD
// (AES-256-GCM, or SM4-GCM) under a data key; a store's data keys live in
// the store itself, in one keyring document sealed by the key-encryption
// key (KEK). The KEK comes from a file or an environment variable and is
// never stored, logged or written to the configuration. Each sealed record
// names its data key, so keys rotate without a flag day: a new data key
// seals new records while the old ones stay readable until they are
// re-encrypted; a new KEK re-seals only the keyring.
//
// Every ciphertext is bound to its record: the associated data is the
// store's domain ("gallery", "jobs") and the record's ref (tenant,
// gallery, subject and face id; job id and item or page), so a record
// copied over another one, or into another store, does not open.
//
// A store uses the package at one seam: Open returns a Ring, whose Seal
// and Open every payload passes on its way in and out. A store that
// never had encryption keeps working when it is turned on (its clear
// records stay readable, flagged as such in the keyring, until
// Ring.Reencrypt seals them); a store with a keyring refuses to open
// without its KEK, so no server writes clear records into it.
//
// The package never returns a record it could not authenticate, never
// writes a record in clear once encryption is on, and never keeps a KEK
// anywhere but in memory.
package keys
