// Package vulndbtest helps tests serve vulnerability feeds: it builds the
// archives the public feeds publish from committed test records.
package vulndbtest

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// OSVZip is a zip of the given OSV record files, flat (ID.json entries),
// as OSV's per-ecosystem all.zip is.
func OSVZip(tb testing.TB, files ...string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		w, err := zw.Create(filepath.Base(f))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
