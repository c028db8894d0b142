// Package npm finds npm packages: installed ones from
// node_modules/**/package.json ("language/javascript/packagejson") and
// locked ones from package-lock.json / npm-shrinkwrap.json (lockfileVersion 1,
// 2 and 3), yarn.lock (classic v1 and berry), pnpm-lock.yaml (lockfile
// versions 5.x, 6 and 9) and Bun's text bun.lock (Bun 1.2 and later,
// lockfileVersion 0 to 2) ("language/javascript/lockfile"). Bun's older
// binary bun.lockb is not read.
//
// # De-duplication
//
// A project that has been installed holds the same packages twice: once in
// its lock file and once under node_modules. The scan core hands extractors
// one file at a time and does not merge across files, so this package draws
// the line itself:
//
//   - The package.json extractor reports what is installed. It only takes a
//     package.json directly inside node_modules/<name>/ or
//     node_modules/@scope/<name>/, so test fixtures and "exports" markers
//     deeper in a package (node_modules/x/test/fixture/package.json,
//     node_modules/x/esm/package.json) are not mistaken for packages.
//   - The lockfile extractor skips every lock file below a node_modules
//     directory: those are npm's hidden lockfile (node_modules/.package-lock.json
//     is not even looked at) and lock files that packages ship for their own
//     development, which describe nothing that is installed.
//   - Within one lock file, identical name@version pairs are reported once
//     (npm, pnpm and Bun install one version at several paths). The merged package
//     is Dev only if every occurrence is dev, and Indirect only if every
//     occurrence is indirect.
//
// A project directory scanned with node_modules present is therefore still
// reported twice, once per source, with different Locations; consumers that
// want one row per package dedupe on PURL. Images usually ship node_modules,
// and there the installed package.json files are the truth (a lock file may
// describe a different install, e.g. with dev dependencies pruned).
//
// # Dev and Indirect
//
// Dev is set where the lock file records it: package-lock.json "dev": true,
// pnpm 5/6 "dev: true", and for pnpm 9 and bun.lock (which do not record it)
// by walking the workspaces' production dependencies through the graph
// ("snapshots" for pnpm; for Bun, each package's metadata, resolved the way
// Bun resolves it: "parent/dep", then up to the top-level "dep"). A package
// no production dependency reaches is Dev. yarn.lock records neither, so
// yarn packages are never marked Dev. Indirect is set for package-lock.json
// v2/v3, pnpm-lock.yaml and bun.lock (a package that is not a dependency of
// a workspace) and is left false where the format does not say (package-lock
// v1, yarn.lock, a bun.lock without workspaces).
//
// # Sources other than the registry
//
// Workspace, link: and file: entries are the project's own code and are not
// reported. Git and tarball dependencies are reported with the version the
// lock file records for them (npm, yarn, pnpm); bun.lock records only the
// commit or URL, so Bun's git, github: and tarball entries are skipped.
//
// # Memory
//
// Every file is read whole, up to MaxPackageJSONSize (8 MiB) for package.json
// and MaxLockfileSize (64 MiB) for lock files; beyond that Extract fails with
// inventory.ErrTooLarge. yarn.lock and pnpm-lock.yaml are read with line
// scanners rather than a YAML library, so a lock file costs a few times its
// size in memory, not the 20–30 times a YAML node tree costs. bun.lock is
// JSONC (trailing commas); its extras are blanked out in place in the buffer
// already read, and encoding/json decodes it into only the fields needed.
//
// Aliased installs (npm i foo@npm:bar) are reported under the real package
// name, because advisories are written against it.
//
// This package must not import internal/vulndb, and must not open files: it
// only reads the Input it is handed.
package npm
