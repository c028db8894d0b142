// Package php finds Composer (Packagist) packages: installed ones from
// vendor/composer/installed.json ("language/php/composer"), in both the
// Composer 1 format (a JSON array) and the Composer 2 format
// ({"packages": [...], "dev-package-names": [...]}), and locked ones from
// composer.lock ("language/php/composerlock", "packages" and
// "packages-dev").
//
// The two are separate extractors for the same reason as npm's: an
// installed application holds both files, the core cannot merge across
// files, and installed.json is the truth for what is in the image (an
// image built with --no-dev has dev packages in composer.lock only). A
// composer.lock below a vendor/ directory belongs to a dependency's own
// development and is skipped.
//
// Dev is set from composer.lock's "packages-dev" and from Composer 2's
// "dev-package-names"; Composer 1's installed.json does not record it.
// Versions are reported as Composer wrote them ("v5.4.0", "1.2.3",
// "dev-main"); Packagist version comparison ignores the "v". Names are
// "vendor/package" and become the PURL namespace and name
// (pkg:composer/symfony/console@v5.4.0).
//
// This package must not import internal/vulndb, and must not open files: it
// only reads the Input it is handed.
package php
