// Package ledger is the audit ledger every decision is written to: the record schema and its
// canonical encoding, redaction before hashing, group-committed durable appends, the RFC 6962
// Merkle tree over the stored record bytes, Ed25519 signed checkpoints in the C2SP
// tlog-checkpoint note format, verification, inclusion and consistency proofs, and key
// management.
//
// It declares the Store interface its storage must satisfy; concrete stores live in
// internal/store/... and point inward at this package. The ledger must not import stores, SQL
// drivers, transports, the guard or the cli (internal/archtest keeps that true).
//
// The invariants, in one place:
//   - A record is encoded exactly once; the bytes that are hashed are the bytes that are stored,
//     and verification hashes the stored bytes — nothing is re-marshalled to be checked.
//   - seq is contiguous from 0 and prev is the RFC 6962 leaf hash of record seq-1.
//   - Append returns only after the record's batch is durable; a failed batch fails every caller
//     in it and acknowledges nothing.
//   - Secrets are removed from parameters before the record is encoded, so they never reach the
//     hash or the disk.
package ledger
