package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/report"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/suppress"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// scanFlags are shared by scan image, scan fs and scan sbom.
type scanFlags struct {
	format        string
	output        string
	failOn        string
	ignoreUnfixed bool
	ignoreFile    string
	vex           []string
	noProgress    bool
	skipDB        bool
	timeout       time.Duration
	// image only
	platform      string
	username      string
	passwordStdin bool
	insecure      bool
	maxImageSize  int64
	maxFiles      int
	maxFileSize   int64
	upload        uploadFlags
	// image only: the deployment policy gate (internal/cli/policy.go)
	policy          string
	policyNamespace string
}

func (a *app) scanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Find packages and known vulnerabilities in an image, a directory or an SBOM",
		Long: `Scan a target, list its vulnerabilities, and fail the pipeline when policy says so.

The vulnerability database must have been imported first (bulwark db import);
--skip-db lists the inventory only.

The Go runtime's memory is kept under a soft limit of 100 MiB during a scan;
set GOMEMLIMIT to choose another.

Exit codes: 0 passed, 1 findings at or above --fail-on remain, 2 error.`,
		Example: `  bulwark scan image --fail-on high registry.example.com/team/app:1.2
  bulwark scan fs --format sarif -o results.sarif .
  bulwark scan sbom --fail-on critical app.cdx.json`,
	}
	cmd.AddCommand(a.scanImageCmd(), a.scanFSCmd(), a.scanSBOMCmd())
	return cmd
}

func addCommonScanFlags(cmd *cobra.Command, f *scanFlags) {
	fl := cmd.Flags()
	fl.StringVarP(&f.format, "format", "f", "", "output format: table, json, sarif, cyclonedx, spdx (default table on a terminal, json otherwise)")
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a finding of this severity or higher remains: low, medium, high, critical")
	fl.BoolVar(&f.ignoreUnfixed, "ignore-unfixed", false, "suppress findings that have no fixed version yet")
	fl.StringVar(&f.ignoreFile, "ignore-file", "", "YAML ignore file (IDs with reason and expiry); default .bulwarkignore.yaml if present")
	fl.StringSliceVar(&f.vex, "vex", nil, "OpenVEX document(s) whose not_affected/fixed statements suppress findings")
	fl.BoolVar(&f.noProgress, "no-progress", false, "never show a progress bar")
	fl.BoolVar(&f.skipDB, "skip-db", false, "list the inventory only, without matching vulnerabilities")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(report.Formats(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"low", "medium", "high", "critical"}, cobra.ShellCompDirectiveNoFileComp))
}

func (a *app) scanImageCmd() *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "image REF",
		Short: "Scan a container image from a registry or an archive",
		Long: `Scan a container image. REF is one of:

  registry.example.com/team/app:1.2   a registry reference (tag or @sha256 digest)
  docker-archive:PATH                 a 'docker save' tarball
  oci-archive:PATH                    a tar of an OCI image layout
  oci-layout:DIR                      an OCI image layout directory

Registry credentials come from the Docker config file (~/.docker/config.json,
$DOCKER_CONFIG) or from --username with --password-stdin. Layers are read once,
streaming; nothing is unpacked to disk.`,
		Example: `  # gate a pipeline on fixable high and critical vulnerabilities
  bulwark scan image --fail-on high --ignore-unfixed registry.example.com/team/app:1.2

  # GitHub code scanning
  bulwark scan image --format sarif -o results.sarif docker-archive:app.tar

  # an SBOM with vulnerabilities
  bulwark scan image --format cyclonedx oci-layout:./build/image`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runScan(cmd, f, "image", args[0])
		},
	}
	addCommonScanFlags(cmd, f)
	fl := cmd.Flags()
	fl.StringVar(&f.platform, "platform", "linux/amd64", "platform to pick from a multi-platform image (os/arch[/variant])")
	fl.StringVar(&f.username, "username", "", "registry user name (password from --password-stdin)")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the registry password from standard input")
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain HTTP registries (use only on loopback or trusted networks)")
	fl.Int64Var(&f.maxImageSize, "max-image-size", 8<<30, "refuse images whose layers decompress to more than this many bytes")
	fl.IntVar(&f.maxFiles, "max-files", 2_000_000, "refuse images with more files than this")
	fl.Int64Var(&f.maxFileSize, "max-file-size", 512<<20, "largest single file read into memory (binaries, archives)")
	fl.StringVar(&f.policy, "policy", "", "also judge the image with the vulnerability and provenance rules of these deployment policies (file or directory); exit 1 when the admission webhook would deny it")
	fl.StringVar(&f.policyNamespace, "policy-namespace", "default", "namespace the image is judged for (selects the policies in scope)")
	addUploadFlags(cmd, &f.upload)
	return cmd
}

func (a *app) scanFSCmd() *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "fs DIR",
		Short: "Scan a root filesystem or a project directory",
		Long: `Scan a directory: an unpacked root filesystem (OS packages and everything
installed in it) or a project (lock files, vendored packages). Symbolic links
are never followed out of DIR.`,
		Example: `  bulwark scan fs --fail-on critical .`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runScan(cmd, f, "fs", args[0])
		},
	}
	addCommonScanFlags(cmd, f)
	cmd.Flags().IntVar(&f.maxFiles, "max-files", 2_000_000, "refuse directories with more files than this")
	cmd.Flags().Int64Var(&f.maxFileSize, "max-file-size", 512<<20, "largest single file read into memory")
	return cmd
}

func (a *app) scanSBOMCmd() *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "sbom FILE",
		Short: "Match the packages of a CycloneDX or SPDX SBOM ('-' reads stdin)",
		Example: `  bulwark scan sbom --fail-on high app.cdx.json
  syft -o cyclonedx-json app:1.2 | bulwark scan sbom -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runScan(cmd, f, "sbom", args[0])
		},
	}
	addCommonScanFlags(cmd, f)
	return cmd
}

func (a *app) dbDir(cmd *cobra.Command) (string, error) {
	d, _ := cmd.Flags().GetString("db-dir")
	if d != "" {
		return d, nil
	}
	return vulndb.DefaultDir()
}

// scanMemoryLimit is the soft limit on the Go runtime's memory during a
// scan, unless GOMEMLIMIT sets one. Extractors buffer big files whole
// (binaries, archives) and the walker drops such buffers after each file;
// without a limit the garbage collector lets the heap grow to twice its
// live size, so while one big buffer is live the heap goal doubles and the
// previous big buffers linger as garbage: peak RSS then follows the largest
// files of the image rather than what the scan needs (BenchmarkPeakRSS1GB
// in internal/scan measures it). Near the limit the collector runs sooner
// and returns freed memory to the OS. It is soft: a scan whose live data
// needs more still gets it, at the cost of more collector work.
const scanMemoryLimit = 100 << 20

func (a *app) runScan(cmd *cobra.Command, f *scanFlags, kind, target string) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	if a.env.Getenv("GOMEMLIMIT") == "" {
		if prev := debug.SetMemoryLimit(-1); prev > scanMemoryLimit {
			debug.SetMemoryLimit(scanMemoryLimit)
			defer debug.SetMemoryLimit(prev)
		}
	}

	format, err := a.resolveFormat(f)
	if err != nil {
		return err
	}
	var failOn vulndb.Severity
	if f.failOn != "" {
		if failOn, err = vulndb.ParseSeverity(f.failOn); err != nil {
			return fmt.Errorf("--fail-on: %w", err)
		}
		if failOn == vulndb.SeverityUnknown {
			return fmt.Errorf("--fail-on: want low, medium, high or critical")
		}
	}
	// Open the database first: a missing database is an error before any
	// image is pulled.
	var db *vulndb.DB
	if !f.skipDB {
		dir, err := a.dbDir(cmd)
		if err != nil {
			return err
		}
		db, err = vulndb.Open(dir, vulndb.OpenOptions{Logger: a.log})
		if err != nil {
			if errors.Is(err, vulndb.ErrNoDatabase) {
				return fmt.Errorf("%w\n  import advisories first: bulwark db import PATH... (or run with --skip-db for the inventory only)", err)
			}
			return err
		}
		defer db.Close()
	}

	s := &scan.Scanner{
		Extractors: list.All(),
		Limits:     image.Limits{MaxTotalBytes: f.maxImageSize, MaxLayerBytes: f.maxImageSize, MaxFiles: f.maxFiles, MaxFileSize: f.maxFileSize},
		Version:    a.version(),
		Log:        a.log,
	}
	var res *scan.Result
	switch kind {
	case "image":
		opts := image.Options{Platform: f.platform, Insecure: f.insecure, Username: f.username}
		if f.passwordStdin {
			if f.username == "" {
				return fmt.Errorf("--password-stdin needs --username")
			}
			pw, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 64<<10)).ReadString('\n')
			if err != nil && err != io.EOF {
				return fmt.Errorf("read password from stdin: %w", err)
			}
			opts.Password = strings.TrimRight(pw, "\r\n")
		}
		var progress func(done, total int64)
		var bar *progressbar.ProgressBar
		if !f.noProgress && isTTY(a.env.Stderr) {
			bar = progressbar.NewOptions64(-1,
				progressbar.OptionSetWriter(a.env.Stderr),
				progressbar.OptionSetDescription("reading layers"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond))
			progress = func(done, total int64) {
				if bar.GetMax64() != total {
					bar.ChangeMax64(total)
				}
				_ = bar.Set64(done)
			}
		}
		res, err = s.Image(ctx, target, opts, progress)
		if bar != nil {
			_ = bar.Finish()
		}
	case "fs":
		res, err = s.Dir(ctx, target)
	case "sbom":
		res, err = a.scanSBOM(ctx, s, target)
	}
	if err != nil {
		return err
	}
	if db != nil {
		if err := scan.Match(ctx, db, res); err != nil {
			return err
		}
	} else {
		res.FinishedAt = time.Now().UTC()
	}

	now := time.Now()
	sup, err := a.loadSuppressions(f, now)
	if err != nil {
		return err
	}
	warnings := sup.Apply(res, now)
	for _, w := range warnings {
		a.log.Warn(w)
	}

	out := a.env.Stdout
	if f.output != "" {
		file, err := os.Create(f.output)
		if err != nil {
			return err
		}
		defer file.Close()
		out = file
	}
	ropts := report.Options{Color: f.output == "" && isTTY(a.env.Stdout), Width: termWidth(out)}
	if err := report.Write(ctx, out, res, format, ropts); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	// Uploaded before the gate: central records the scan even when the
	// build is about to fail on it.
	if err := a.uploadIfAsked(ctx, &f.upload, res); err != nil {
		return err
	}
	if err := a.scanPolicyGate(ctx, f, res); err != nil {
		return err
	}
	if failOn != vulndb.SeverityUnknown {
		if v := suppress.Evaluate(res, failOn); v.Failed {
			fmt.Fprintf(a.env.Stderr, "bulwark: policy failed: %s\n", v.Reason)
			return ErrPolicyFailed
		}
	}
	return nil
}

func (a *app) scanSBOM(ctx context.Context, s *scan.Scanner, path string) (*scan.Result, error) {
	var r io.Reader = a.env.Stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		r = file
	}
	return s.SBOM(ctx, path, r)
}

func (a *app) resolveFormat(f *scanFlags) (report.Format, error) {
	if f.format == "" {
		if f.output == "" && isTTY(a.env.Stdout) {
			return report.Format("table"), nil
		}
		return report.Format("json"), nil
	}
	return report.ParseFormat(f.format)
}

func (a *app) loadSuppressions(f *scanFlags, now time.Time) (*suppress.Set, error) {
	path := f.ignoreFile
	if path == "" {
		if _, err := os.Stat(".bulwarkignore.yaml"); err == nil {
			path = ".bulwarkignore.yaml"
		}
	}
	set := &suppress.Set{IgnoreUnfixed: f.ignoreUnfixed}
	if path != "" {
		if err := set.LoadIgnoreFile(path); err != nil {
			return nil, err
		}
	}
	for _, v := range f.vex {
		if err := set.LoadVEX(filepath.Clean(v)); err != nil {
			return nil, err
		}
	}
	return set, nil
}
