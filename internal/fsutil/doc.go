// Package fsutil holds the few file-system helpers several domains need
// in the same form: today, writing a file so that a crash leaves either the
// old content or the new one, never half of it (certificates and keys,
// learned sensor state). It imports only the standard library.
package fsutil
