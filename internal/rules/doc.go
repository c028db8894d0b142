// Package rules is Bulwark's runtime and audit rule engine: it loads rules
// written in the Falco rules YAML format (rules, macros, lists, exceptions,
// append and override), compiles each condition once into closures over
// Event, and evaluates events against them — syscall events from the node
// sensor and Kubernetes audit events (ka.* fields) through the same engine.
//
// Design for speed: field names are resolved to accessor functions and
// constants are parsed at compile time; rules are indexed by evt.type so an
// event only runs the rules that can match its type; evaluating a
// non-matching event does not allocate.
//
// Honesty over coverage: a rule that uses a field, operator or source
// Bulwark cannot fill (see FIELDS.md) is reported by Engine.Skipped with its
// file:line and never runs; malformed files are errors naming file:line.
//
// The default rule set (defaults/*.yaml, embedded) maps to Defender for
// Containers' node and control-plane alerts with MITRE ATT&CK tags.
//
// This package must stay pure Go with no I/O of its own: it must not import
// the eBPF sensor, client-go, k8s.io/apiserver, or anything that talks to
// the network or disk (rule files are passed in as bytes).
package rules
