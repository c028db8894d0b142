package npm

import (
	"context"
	"fmt"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Lockfile reports the packages locked by package-lock.json,
// npm-shrinkwrap.json, yarn.lock, pnpm-lock.yaml and bun.lock.
type Lockfile struct{}

// NewLockfile returns the "language/javascript/lockfile" extractor.
func NewLockfile() *Lockfile { return &Lockfile{} }

// Name implements inventory.Extractor.
func (*Lockfile) Name() string { return "language/javascript/lockfile" }

// Version implements inventory.Extractor. 2: bun.lock.
func (*Lockfile) Version() int { return 2 }

// Required takes lock files by base name, except below node_modules (see the
// package documentation on de-duplication). Bun's binary bun.lockb is not
// taken: only its text successor bun.lock is read.
func (*Lockfile) Required(path string, _ inventory.FileInfo) bool {
	switch baseName(path) {
	case "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock":
		return !isNodeModulesPath(path)
	}
	return false
}

// Extract implements inventory.Extractor.
func (e *Lockfile) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := readLimited(in, MaxLockfileSize)
	if err != nil {
		return inventory.Output{}, fmt.Errorf("lock file: %w", err)
	}
	var pkgs []inventory.Package
	switch baseName(in.Path) {
	case "package-lock.json", "npm-shrinkwrap.json":
		pkgs, err = parsePackageLock(ctx, b, in.Path, e.Name())
	case "yarn.lock":
		pkgs, err = parseYarnLock(ctx, b, in.Path, e.Name())
	case "pnpm-lock.yaml":
		pkgs, err = parsePnpmLock(ctx, b, in.Path, e.Name())
	case "bun.lock":
		pkgs, err = parseBunLock(ctx, b, in.Path, e.Name())
	default:
		return inventory.Output{}, nil
	}
	if err != nil {
		return inventory.Output{}, err
	}
	return inventory.Output{Packages: pkgs}, nil
}
