// Package policy is Bulwark's deployment policy language and its evaluator:
// the documents (apiVersion bulwark.dev/v1alpha1, kind Policy or
// PolicyList) that say which workloads may run, and Evaluate, which judges
// one admission request against a loaded Set and explains every violation
// (rule, container, finding, fix).
//
// The same Set answers the admission webhook (internal/admission), the
// pipeline gate (`bulwark policy test`) and `bulwark scan image --policy`,
// so a workload gets the same verdict everywhere.
//
// Configuration checks are not re-implemented here: they run through
// internal/posture (the upstream Pod Security Standards checks and
// Bulwark's hardening controls). Custom rules are CEL through
// internal/celeval. Vulnerability verdicts come from an ImageSource the
// caller passes in (central's findings, a local scan result).
//
// This package must not import client-go, internal/server, internal/store,
// internal/admission or internal/cli, nor make network calls itself: it
// judges objects, it does not fetch them (a dependency test checks the
// imports).
package policy
