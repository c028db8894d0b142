// Package vulndb is Bulwark's local vulnerability database: it imports
// advisories, enriches them, stores them in a compact on-disk index that
// opens in milliseconds, and matches packages against them with
// ecosystem-correct version comparison (github.com/google/osv-scalibr/semantic).
//
// # Import
//
// Import reads each input (a directory, a zip — zips inside directories and
// one level of zip inside zip included — or a single file) as one source.
// The format is detected from file names and content, or forced
// (ImportOptions.Format); see formats.go:
//
//   - OSV records, JSON or YAML, at any depth (the golang.org/x/vulndb
//     module zip: only data/osv; testdata and hidden directories are
//     skipped everywhere). Withdrawn records are counted and left out;
//     malformed ones are skipped, counted and named in SourceStatus.Errors.
//   - nodejs/security-wg vuln/npm/*.json: npm semver ranges become
//     intervals (core advisories for the node binary are not imported).
//   - Alpine secdb secfixes YAML: each line "fixed in version V of source
//     package P on branch vX.Y" becomes a range; version "0" means never affected.
//   - CISA KEV, CVE JSON 5 (CVSS of the CNA and every ADP, e.g. CISA's
//     vulnrichment) and FIRST EPSS CSV: enrichment only. They attach to any
//     record whose ID or alias is the CVE (or, failing aliases, whose
//     "related" lists it, as AlmaLinux's do); CVE 5 CVSS only fills records
//     that carry none.
//
// Every read is bounded (MaxRecordSize per record, Limits per input); YAML
// with aliases is refused, so no "billion laughs"; zip entry names are never
// used as paths.
//
// # Storage
//
// The directory (DefaultDir: $BULWARK_DB_DIR or the user cache dir) keeps
// each source's normalised records (sources/NAME.json.zst), so re-importing
// a source replaces only it, and one compiled index (index.bvdb, format in
// index.go) rebuilt after each import. Every file is written to a temporary
// file and renamed, under an exclusive lock: a crash leaves the old database,
// and a reader holding the old index keeps reading it whole.
//
// # Matching
//
// DB.Match looks each package up by (ecosystem, name) in the mapped index
// and decodes details only for matches. Debian, Ubuntu and Alpine packages
// are matched by source package; RPM distributions by binary package, as
// their OSV records are written. OS advisories apply only to the release
// they name. Language packages installed by the OS package manager
// (Package.OSPackage) are not matched against their language ecosystem,
// because distributions backport fixes: only the OS package's advisories
// apply. Records that alias each other are reported once per package.
//
// Go advisories name the vulnerable packages of a module, the platforms
// they exist on and their vulnerable symbols (go-vulndb's
// ecosystem_specific.imports). They are kept in the index: an entry whose
// every vulnerable package is limited to other GOOS/GOARCH lists than the
// package's Platform is skipped, as govulncheck skips it; and when the
// package carries its binary's functions (Package.Symbols, read by the Go
// binary extractor), Match.Reachability says whether a vulnerable symbol, a
// vulnerable package or only the module is in the binary, as govulncheck
// -mode binary's symbol, package and module levels. The findings
// themselves stay module-level; TestAgreesWithGovulncheck checks both
// against the real govulncheck.
//
// It must not import internal/scan or anything that reads images.
package vulndb
