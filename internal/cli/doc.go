// Package cli is Bulwark's command line: the cobra command tree, flag,
// environment and YAML configuration binding, and the mapping from errors to
// exit codes. It wires the domain packages together and holds no domain logic
// of its own.
//
// Exit codes (documented in the README, relied on by pipelines):
//
//	0  success, policy passed
//	1  policy failed (findings at or above --fail-on)
//	2  error (bad input, unreadable image, no database, ...)
package cli
