package cli

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// writeDemoFiles writes the bundled demo data under dir and returns the
// advisory files and the demo image archive. They are written out because
// the importer and the image reader take paths, as they do for users'
// own files. Shared by `bulwark demo` and `bulwark server --demo`.
func writeDemoFiles(dir string) (advisories []string, imagePath string, err error) {
	err = fs.WalkDir(demo.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := copyOut(demo.Files, p, dst); err != nil {
			return err
		}
		switch {
		case p == demo.ImagePath:
			imagePath = dst
		case filepath.Dir(dst) == filepath.Join(dir, demo.DBDir):
			advisories = append(advisories, dst)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("demo data: %w", err)
	}
	return advisories, imagePath, nil
}

// importDemoDB imports the bundled advisory files into dbDir.
func (a *app) importDemoDB(ctx context.Context, who, dbDir string, paths []string) error {
	fmt.Fprintf(a.env.Stderr, "%s: importing %d bundled advisory sources into %s\n", who, len(paths), dbDir)
	_, err := vulndb.Import(ctx, dbDir, paths, vulndb.ImportOptions{Logger: a.log})
	return err
}
