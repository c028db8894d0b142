// Package live reads the objects posture evaluates from a running cluster
// through client-go: read-only, paged (Limit/Continue), all namespaces or a
// selection. A list the credentials may not perform is recorded in
// posture.Decoded.Unavailable, so the report says what it could not see and
// the controls that need it are skipped instead of failing on missing data.
//
// It exists apart from internal/posture so that the evaluator stays free of
// client-go. It must not import internal/cli or anything that writes to the
// cluster.
package live
