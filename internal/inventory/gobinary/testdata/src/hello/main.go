// Command hello is a test fixture for Bulwark's Go binary extractor: the
// smallest Go program, built with a release-candidate toolchain so that the
// extractor's handling of "go1.22rc1" is tested on a real binary.
package main

func main() {}
