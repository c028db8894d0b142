package cli

import (
	"context"
	"fmt"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// importDemoDB imports the bundled advisory files (written out by
// demo.WriteFiles) into dbDir. Shared by `bulwark demo` and
// `bulwark server --demo`.
func (a *app) importDemoDB(ctx context.Context, who, dbDir string, paths []string) error {
	fmt.Fprintf(a.env.Stderr, "%s: importing %d bundled advisory sources into %s\n", who, len(paths), dbDir)
	_, err := vulndb.Import(ctx, dbDir, paths, vulndb.ImportOptions{Logger: a.log})
	return err
}
