// Package spool is the sensor's disk queue for alerts on their way to
// central: records are appended to fsync'd segment files and read back in
// order until the consumer acknowledges them, so an alert accepted by
// Append survives a crash, a restart or a long outage of central.
//
// Each record carries a CRC so a torn write or a damaged disk is detected:
// what is valid is replayed, the rest is counted (Stats.CorruptRecords,
// Stats.CorruptBytes) and skipped, never a panic. The spool is size-capped:
// when full, Append refuses (ErrFull) rather than silently dropping older,
// already accepted records.
//
// Delivery is at-least-once; records should carry their own idempotency key
// (the sensor uses the alert's UUID) so a replay after a crash between send
// and Ack stores nothing twice.
//
// This package must not import the sensor, the rules engine or anything
// network-related: it stores opaque byte records.
package spool
