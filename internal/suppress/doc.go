// Package suppress decides which findings a scan reports and whether the
// pipeline passes. It runs after matching:
//
//   - an ignore file (YAML, `.bulwarkignore.yaml` by default, or a plain
//     `.trivyignore`-style list) hides findings by vulnerability ID (any
//     alias), optionally only in one package, with a required reason and an
//     optional expiry date;
//   - OpenVEX documents hide findings their author states are not_affected or
//     fixed in the scanned image or package, the latest statement winning;
//   - --ignore-unfixed hides findings no fixed version exists for yet.
//
// Hidden findings move to Result.Suppressed with the reason, so reports can
// say what was hidden and why. Evaluate is the gate: it fails when a
// remaining finding is at or above the --fail-on severity. The CLI maps the
// verdict to exit codes (0 passed, 1 policy failed, 2 error).
//
// Time is a parameter (Apply's now), never read from the clock here, so
// expiry is testable and a result can be re-evaluated as of any date.
//
// It reads internal/scan and internal/vulndb types and must not import
// internal/report, internal/cli or anything that does network I/O; file
// reading is limited to the Load helpers.
package suppress
