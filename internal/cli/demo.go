package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

func (a *app) demoCmd() *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Scan the bundled demo image against the bundled real advisories",
		Long: `Show what Bulwark does without any network: import the bundled subsets of real
advisory databases (Go vulnerability database, Node.js security WG, CISA KEV,
CISA vulnrichment CVSS) into a database, then scan the bundled demo image (real
Go binaries built with old module versions, real npm packages, Debian packages)
and print the report.

The database goes to --db-dir when given, else to a temporary directory that
is removed afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmp, err := os.MkdirTemp("", "bulwark-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dbDir, _ := cmd.Flags().GetString("db-dir")
			if dbDir == "" {
				dbDir = filepath.Join(tmp, "db")
			}
			// The bundled files are written out: the importer and the image
			// reader take paths, as they do for users' own files.
			var paths []string
			var imagePath string
			err = fs.WalkDir(demo.Files, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				dst := filepath.Join(tmp, filepath.FromSlash(p))
				if err := copyOut(demo.Files, p, dst); err != nil {
					return err
				}
				switch {
				case p == demo.ImagePath:
					imagePath = dst
				case filepath.Dir(dst) == filepath.Join(tmp, demo.DBDir):
					paths = append(paths, dst)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("demo data: %w", err)
			}
			fmt.Fprintf(a.env.Stderr, "bulwark demo: importing %d bundled advisory sources into %s\n", len(paths), dbDir)
			if _, err := vulndb.Import(cmd.Context(), dbDir, paths, vulndb.ImportOptions{Logger: a.log}); err != nil {
				return err
			}
			if err := cmd.Flags().Set("db-dir", dbDir); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "bulwark demo: scanning the demo image (docker-archive:%s)\n\n", imagePath)
			return a.runScan(cmd, f, "image", "docker-archive:"+imagePath)
		},
	}
	addCommonScanFlags(cmd, f)
	f.format = "table"
	cmd.Flags().Lookup("format").DefValue = "table"
	f.platform = "linux/amd64"
	f.maxImageSize, f.maxFiles, f.maxFileSize = 1<<30, 100_000, 256<<20
	return cmd
}

func copyOut(fsys fs.FS, name, dst string) error {
	src, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
