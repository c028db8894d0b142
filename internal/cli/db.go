package cli

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
		Example: `  bulwark db update                 # download the public feeds that changed
  bulwark db import ./golang-vulndb.zip ./cisa-kev.json
  bulwark db status`,
	}
	cmd.AddCommand(a.dbImportCmd(), a.dbUpdateCmd(), a.dbStatusCmd())
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
				return a.printJSON(st)
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

// dbSourceFlags choose the sources `db update` and the server download.
type dbSourceFlags struct {
	file      string
	overrides []string
	caCert    string
	maxBytes  int64
}

func (f *dbSourceFlags) add(fl *pflag.FlagSet, prefix string) {
	fl.StringVar(&f.file, prefix+"sources", "", "source list (YAML: sources: [{name, url, format}]) replacing the built-in public feeds")
	fl.StringSliceVar(&f.overrides, prefix+"source", nil, "NAME=URL: download source NAME from URL (a mirror) or add it; repeatable")
	fl.StringVar(&f.caCert, prefix+"ca-cert", "", "PEM CA certificates trusted for the downloads, besides the system's (a private mirror)")
	fl.Int64Var(&f.maxBytes, prefix+"max-download-bytes", 4<<30, "largest download of one source")
}

// sources is the source list: the file's or the built-in one, with the
// overrides applied, restricted to names when given.
func (f *dbSourceFlags) sources(names []string) ([]vulndb.Source, error) {
	srcs := vulndb.DefaultSources()
	if f.file != "" {
		b, err := os.ReadFile(f.file)
		if err != nil {
			return nil, err
		}
		if srcs, err = vulndb.ParseSources(b); err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
	}
	for _, o := range f.overrides {
		name, u, ok := strings.Cut(o, "=")
		if !ok {
			return nil, fmt.Errorf("--source %q: want NAME=URL", o)
		}
		i := slices.IndexFunc(srcs, func(s vulndb.Source) bool { return s.Name == name })
		if i < 0 {
			srcs = append(srcs, vulndb.Source{Name: name, URL: u})
		} else {
			srcs[i].URL = u
		}
	}
	if len(names) > 0 {
		var sel []vulndb.Source
		for _, n := range names {
			i := slices.IndexFunc(srcs, func(s vulndb.Source) bool { return s.Name == n })
			if i < 0 {
				return nil, fmt.Errorf("no source %q (see bulwark db update --list)", n)
			}
			sel = append(sel, srcs[i])
		}
		srcs = sel
	}
	if err := vulndb.CheckSources(srcs); err != nil {
		return nil, err
	}
	return srcs, nil
}

// options are the download options (an HTTP client trusting --ca-cert).
func (f *dbSourceFlags) options(version string) (vulndb.UpdateOptions, error) {
	opts := vulndb.UpdateOptions{MaxBytes: f.maxBytes, UserAgent: "bulwark/" + version}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return opts, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return opts, fmt.Errorf("%s: no PEM certificate", f.caCert)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		tr.ResponseHeaderTimeout = 60 * time.Second
		opts.Client = &http.Client{Transport: tr}
	}
	return opts, nil
}

func (a *app) dbUpdateCmd() *cobra.Command {
	var f dbSourceFlags
	var format string
	var list, noProgress bool
	cmd := &cobra.Command{
		Use:   "update [SOURCE...]",
		Short: "Download the vulnerability sources and import those that changed",
		Long: `Download each source (all, or the SOURCEs named) and import the ones that
changed since the last update. Requests are conditional (ETag and
Last-Modified from the last download), so an unchanged feed costs one small
request and no import. A source that fails to download or import keeps its
previous records; the others are updated all the same, and the command exits 2
naming the failures.

The built-in sources are the public feeds (list them with --list): OSV's
per-ecosystem exports (Go, npm, PyPI, Maven, RubyGems, crates.io, NuGet,
Packagist, Alpine, Debian, Ubuntu, AlmaLinux, Rocky Linux, Red Hat), CISA's
KEV catalogue and FIRST's EPSS scores. Replace the list with --sources FILE,
or point single sources at a mirror with --source NAME=URL (an air-gapped
network: mirror the files, then --ca-cert for the mirror's CA).

Run it from cron, or let central do it: bulwark server --db-update-interval 6h.`,
		Example: `  bulwark db update
  bulwark db update osv-go cisa-kev
  bulwark db update --source osv-go=https://mirror.internal/osv/Go/all.zip --ca-cert /etc/ssl/mirror-ca.pem
  bulwark db update --sources /etc/bulwark/sources.yaml --format json`,
		Args: cobra.ArbitraryArgs,
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			var names []string
			for _, s := range vulndb.DefaultSources() {
				names = append(names, s.Name)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			srcs, err := f.sources(args)
			if err != nil {
				return err
			}
			if list {
				return a.printSources(srcs, format)
			}
			dir, err := a.dbDir(cmd)
			if err != nil {
				return err
			}
			opts, err := f.options(a.version())
			if err != nil {
				return err
			}
			opts.Logger = a.log
			var bar *progressbar.ProgressBar
			if !noProgress && isTTY(a.env.Stderr) {
				bar = progressbar.NewOptions64(-1,
					progressbar.OptionSetWriter(a.env.Stderr),
					progressbar.OptionSetDescription(fmt.Sprintf("downloading %d sources", len(srcs))),
					progressbar.OptionShowBytes(true),
					progressbar.OptionClearOnFinish(),
					progressbar.OptionThrottle(100*time.Millisecond))
				var mu sync.Mutex
				opts.Progress = func(n int64) {
					mu.Lock()
					_ = bar.Add64(n)
					mu.Unlock()
				}
			}
			res, uerr := vulndb.Update(cmd.Context(), dir, srcs, opts)
			if bar != nil {
				_ = bar.Finish()
			}
			if res != nil {
				if err := a.printUpdate(res, format); err != nil {
					return err
				}
			}
			return uerr
		},
	}
	f.add(cmd.Flags(), "")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	cmd.Flags().BoolVar(&list, "list", false, "list the sources and exit")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "never show a progress bar (shown on a terminal only)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) printSources(srcs []vulndb.Source, format string) error {
	if format == "json" {
		return a.printJSON(srcs)
	}
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tFORMAT\tURL")
	for _, s := range srcs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, cmp.Or(s.Format, "detected"), s.URL)
	}
	return tw.Flush()
}

func (a *app) printUpdate(res []vulndb.UpdateResult, format string) error {
	if format == "json" {
		return a.printJSON(res)
	}
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSTATUS\tRECORDS\tSIZE\tCHANGED\tERROR")
	for _, r := range res {
		records, changed := "-", "-"
		if r.Records > 0 {
			records = fmt.Sprint(r.Records)
		}
		if !r.Changed.IsZero() {
			changed = r.Changed.Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Status, records, humanBytes(r.Bytes), changed, r.Error)
	}
	return tw.Flush()
}

// humanBytes is n in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// printJSON writes v to standard output, indented.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
