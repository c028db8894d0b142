package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

func (a *app) dbCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the local vulnerability database",
		Long: `The local vulnerability database holds advisories imported from public
sources. Each source is stored separately: importing a source again replaces
only that source. The index is rewritten atomically, so a scan running at the
same time sees either the old or the new database, never a mix.`,
		Example: `  bulwark db import ./golang-vulndb.zip ./cisa-kev.json
  bulwark db status`,
	}
	cmd.AddCommand(a.dbImportCmd(), a.dbStatusCmd())
	return cmd
}

func (a *app) dbImportCmd() *cobra.Command {
	var format, name string
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import advisories from files, directories or zip archives",
		Long: `Import advisories. Each PATH is a directory, a zip archive or a file in one of
these formats, detected from its content (override with --format):

  osv         OSV records, JSON or YAML, any nesting (e.g. the golang.org/x/vulndb
              module zip, RustSec's osv branch, PyPA's advisory database, AlmaLinux)
  nodejs      the Node.js security working group's vuln/npm/*.json
  alpine      Alpine secdb secfixes YAML
  cisa-kev    CISA's Known Exploited Vulnerabilities catalogue JSON
  cve5        CVE JSON 5 records (CVSS from the CNA and CISA's ADP container)
  epss        FIRST EPSS scores CSV

Withdrawn records are skipped; malformed records are skipped and reported.`,
		Example: `  bulwark db import ~/Downloads/rustsec-osv.zip ./pypa-advisory-database.zip
  bulwark db import --format cisa-kev known_exploited_vulnerabilities.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.dbDir(cmd)
			if err != nil {
				return err
			}
			stats, err := vulndb.Import(cmd.Context(), dir, args, vulndb.ImportOptions{Format: format, Name: name, Logger: a.log})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tFORMAT\tRECORDS\tWITHDRAWN\tSKIPPED\tORIGIN")
			for _, s := range stats {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.Name, s.Format, s.Records, s.Withdrawn, s.Skipped, s.Origin)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "input format (default: detected): osv, nodejs, alpine, cisa-kev, cve5, epss")
	cmd.Flags().StringVar(&name, "name", "", "source name (default: derived from the path)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"osv", "nodejs", "alpine", "cisa-kev", "cve5", "epss"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) dbStatusCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the local database holds and how old it is",
		Example: `  bulwark db status
  bulwark db status --format json --db-dir /var/cache/bulwark/db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.dbDir(cmd)
			if err != nil {
				return err
			}
			db, err := vulndb.Open(dir, vulndb.OpenOptions{Logger: a.log})
			if err != nil {
				return err
			}
			defer db.Close()
			st := db.Status()
			if format == "json" {
				enc := json.NewEncoder(a.env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(a.env.Stdout, "database: %s\nbuilt:    %s (%s ago)\nvulnerabilities: %d\n\n",
				st.Dir, st.Built.Format(time.RFC3339), time.Since(st.Built).Round(time.Second), st.Vulnerabilities)
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tFORMAT\tRECORDS\tIMPORTED\tNEWEST RECORD\tORIGIN")
			for _, s := range st.Sources {
				newest := "-"
				if !s.Newest.IsZero() {
					newest = s.Newest.Format("2006-01-02")
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.Format, s.Records, s.Imported.Format("2006-01-02 15:04"), newest, s.Origin)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	return cmd
}
