package php

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/package-url/packageurl-go"
)

// MaxFileSize bounds how much of installed.json or composer.lock is read.
// Both carry every package's description and autoload rules; large Drupal
// sites reach a few MiB.
const MaxFileSize = 32 << 20

// Installed reports packages from vendor/composer/installed.json.
type Installed struct{}

// NewInstalled returns the "language/php/composer" extractor.
func NewInstalled() *Installed { return &Installed{} }

// Name implements inventory.Extractor.
func (*Installed) Name() string { return "language/php/composer" }

// Version implements inventory.Extractor.
func (*Installed) Version() int { return 1 }

// Required takes composer/installed.json in any vendor directory (Composer's
// vendor-dir is configurable, so the directory name is not checked).
func (*Installed) Required(path string, _ inventory.FileInfo) bool {
	return path == "composer/installed.json" || strings.HasSuffix(path, "/composer/installed.json")
}

// Extract implements inventory.Extractor.
func (e *Installed) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := readLimited(in)
	if err != nil {
		return inventory.Output{}, err
	}
	var pkgs []composerPackage
	devNames := make(map[string]bool)
	switch firstByte(b) {
	case '[': // Composer 1
		if err := json.Unmarshal(b, &pkgs); err != nil {
			return inventory.Output{}, fmt.Errorf("parse installed.json %s: %w", in.Path, err)
		}
	default: // Composer 2
		var v2 struct {
			Packages        []composerPackage `json:"packages"`
			DevPackageNames []string          `json:"dev-package-names"`
		}
		if err := json.Unmarshal(b, &v2); err != nil {
			return inventory.Output{}, fmt.Errorf("parse installed.json %s: %w", in.Path, err)
		}
		pkgs = v2.Packages
		for _, n := range v2.DevPackageNames {
			devNames[n] = true
		}
	}
	var d inventory.Dedup
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return inventory.Output{}, err
		}
		add(&d, p, devNames[p.Name], in.Path, e.Name())
	}
	return inventory.Output{Packages: d.Sorted()}, nil
}

// Lock reports packages from composer.lock.
type Lock struct{}

// NewLock returns the "language/php/composerlock" extractor.
func NewLock() *Lock { return &Lock{} }

// Name implements inventory.Extractor.
func (*Lock) Name() string { return "language/php/composerlock" }

// Version implements inventory.Extractor.
func (*Lock) Version() int { return 1 }

// Required takes composer.lock outside vendor directories.
func (*Lock) Required(path string, _ inventory.FileInfo) bool {
	if path != "composer.lock" && !strings.HasSuffix(path, "/composer.lock") {
		return false
	}
	return !strings.HasPrefix(path, "vendor/") && !strings.Contains(path, "/vendor/")
}

// Extract implements inventory.Extractor.
func (e *Lock) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := readLimited(in)
	if err != nil {
		return inventory.Output{}, err
	}
	var lock struct {
		Packages    []composerPackage `json:"packages"`
		PackagesDev []composerPackage `json:"packages-dev"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return inventory.Output{}, fmt.Errorf("parse composer.lock %s: %w", in.Path, err)
	}
	var d inventory.Dedup
	for i, list := range [][]composerPackage{lock.Packages, lock.PackagesDev} {
		for _, p := range list {
			if err := ctx.Err(); err != nil {
				return inventory.Output{}, err
			}
			add(&d, p, i == 1, in.Path, e.Name())
		}
	}
	return inventory.Output{Packages: d.Sorted()}, nil
}

// composerPackage is one package entry; installed.json and composer.lock
// share the shape.
type composerPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// License is an array of SPDX identifiers; kept raw because old
	// packages wrote a plain string.
	License json.RawMessage `json:"license"`
}

// add adds a valid package to d, which keeps one package per name@version
// in a file: a package listed as both production and dev is production.
func add(d *inventory.Dedup, p composerPackage, dev bool, location, extractor string) {
	vendor, name, ok := splitName(p.Name)
	if !ok || !validVersion(p.Version) {
		return
	}
	d.Add(inventory.Package{
		Name:      p.Name,
		Version:   p.Version,
		Type:      inventory.TypeComposer,
		Ecosystem: inventory.EcosystemPackagist,
		PURL:      packageurl.NewPackageURL(packageurl.TypeComposer, vendor, name, p.Version, nil, "").ToString(),
		Licenses:  licenses(p.License),
		Location:  location,
		Extractor: extractor,
		Dev:       dev,
	})
}

func licenses(raw json.RawMessage) []string {
	var list []string
	switch firstByte(raw) {
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		for _, it := range items {
			var s string
			if json.Unmarshal(it, &s) == nil {
				list = append(list, s)
			}
		}
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			list = append(list, s)
		}
	}
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" && len(s) <= 128 && !slices.Contains(out, s) && len(out) < 16 {
			out = append(out, s)
		}
	}
	return out
}

// splitName splits and checks "vendor/package" against Composer's name
// rule (lower-case letters, digits, and ".", "_", "-" inside).
func splitName(s string) (vendor, name string, ok bool) {
	i := strings.IndexByte(s, '/')
	if i <= 0 || len(s) > 214 {
		return "", "", false
	}
	vendor, name = s[:i], s[i+1:]
	return vendor, name, validPart(vendor) && validPart(name)
}

func validPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && ((c != '.' && c != '_' && c != '-') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// validVersion accepts Composer version strings ("1.2.3", "v5.4.0",
// "2.0.0-RC1", "dev-main", "1.x-dev") and rejects spaces, constraints and
// control characters.
func validVersion(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || c == '+' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func readLimited(in *inventory.Input) ([]byte, error) {
	b, err := inventory.ReadAll(in, MaxFileSize)
	return inventory.TrimBOM(b), err // Composer ignores a BOM
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
