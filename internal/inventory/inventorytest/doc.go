// Package inventorytest holds what the extractor tests under
// internal/inventory share: handing a file to an extractor the way the scan
// core does (a stream and a buffering ReaderAt), reading testdata, golden
// files refreshed with -update, a runner for tables of hostile inputs, and
// the checks every fuzz target makes whatever the format.
//
// The shared checks are what no extractor may ever give, for any input:
// packages without a name or version or located elsewhere than the file
// read, owned paths that are not clean relative paths, more results than
// the input has bytes, or (for hostile inputs) a run that does not end.
// Each test adds the checks of its own format.
//
// It is imported by _test.go files only. It defines the -update flag: a test
// package that imports it must not define its own.
package inventorytest
