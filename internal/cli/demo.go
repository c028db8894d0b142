package cli

import (
	"fmt"
	"github.com/bulwark-security/bulwark/internal/demo"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
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
		Example: `  bulwark demo
  bulwark demo --format json --fail-on critical`,
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
			paths, imagePath, err := demo.WriteFiles(tmp)
			if err != nil {
				return err
			}
			if err := a.importDemoDB(cmd.Context(), "bulwark demo", dbDir, paths); err != nil {
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
