package server

import (
	"testing"

	"github.com/bulwark-security/bulwark/internal/importcheck"
)

// TestImports holds the package doc's promise: the server does not import
// the CLI (which wires it) or the console (mounted through Deps.Console).
func TestImports(t *testing.T) {
	importcheck.Forbid(t, ".", func(p string) bool {
		return importcheck.Internal(p, "cli") || importcheck.Internal(p, "console")
	})
}
