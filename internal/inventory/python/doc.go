// Package python finds Python (PyPI) packages: installed distributions
// ("language/python/dist-info") from their core metadata files:
// *.dist-info/METADATA (wheels, pip), *.egg-info/PKG-INFO and *.egg-info
// files (setuptools, distutils, Debian's python3-* packages) and
// *.egg/EGG-INFO/PKG-INFO (eggs).
//
// Only the RFC 822 style header block is read: parsing stops at the first
// empty line, because the body is the project's README and can be megabytes
// long. Requirements files (requirements.txt, requires.txt) are declarations,
// not installations, and are never read.
//
// Project lock files — poetry.lock, Pipfile.lock and uv.lock — are read by a
// second extractor ("language/python/lockfile"), for scanning project
// directories. Dev is set from poetry's category = "dev" (Poetry < 1.5) or
// groups without "main" (lock-version 2.1), Pipfile.lock's "develop"
// section, and for uv.lock by walking the project's production and optional
// dependencies (a package they do not reach is dev). Poetry lock-version 2.0
// does not record it. Local sources (the project itself, path and
// directory dependencies) are skipped; lock files inside site-packages or
// dist-packages are a dependency's own and are not read.
//
// # Names
//
// Package.Name is the project name normalised per PEP 503 (lower case, runs
// of "-", "_" and "." replaced by one "-": "PyYAML" → "pyyaml",
// "typing_extensions" → "typing-extensions", "lazr.uri" → "lazr-uri"). The
// PyPA advisory database, the source of OSV's PyPI records, names packages
// that way in 663 of its 664 package names and in all of its PURLs (the one
// exception, "jw.util", carries purl pkg:pypi/jw-util), and the PURL spec
// requires it for the pypi type. So Name and PURL match advisories as they
// are; a vulnerability database should still normalise the names of
// incoming records with the same rule (NormalizeName) to catch the
// exceptions. The display spelling is not kept: Package has no field for it
// and no consumer needs it.
//
// Versions are reported as written; PEP 440 comparison belongs to the
// version library.
//
// This package must not import internal/vulndb, and must not open files: it
// only reads the Input it is handed.
package python
