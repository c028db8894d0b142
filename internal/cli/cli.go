package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes.
const (
	ExitOK           = 0
	ExitPolicyFailed = 1
	ExitError        = 2
)

// ErrPolicyFailed is returned by commands whose gate failed; it maps to exit 1.
var ErrPolicyFailed = errors.New("policy failed")

// Env is everything the CLI takes from the process, passed in so tests can run
// commands in-process without touching the real environment.
type Env struct {
	Version string
	Args    []string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Getenv  func(string) string
}

// isTTY reports whether w is a terminal.
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// termWidth is the terminal's width, or 0 (no limit) when w is not one.
func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	wd, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return wd
}

// app carries the dependencies every command needs.
type app struct {
	env    Env
	log    *slog.Logger
	logLvl *slog.LevelVar
	cfg    *config
}

// Main runs the CLI and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelWarn)
	a := &app{
		env:    env,
		logLvl: lvl,
		log:    slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: lvl})),
	}
	root := a.rootCmd()
	root.SetArgs(env.Args)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrPolicyFailed):
		return ExitPolicyFailed
	default:
		fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		return ExitError
	}
}

func (a *app) version() string {
	v := a.env.Version
	if v == "" || v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		} else {
			v = "dev"
		}
	}
	return v
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "bulwark",
		Short: "Container security: scan images, gate deployments, watch runtime, measure posture",
		Long: `Bulwark secures containers through their whole life, self-hosted.

  bulwark scan image REF      find packages and known vulnerabilities in an image; gate a CI pipeline
  bulwark scan fs DIR         the same for a root filesystem or a project directory
  bulwark scan sbom FILE      match a CycloneDX or SPDX SBOM
  bulwark db import PATH...   import advisories (OSV, CISA KEV, CVE 5, ...) into the local database
  bulwark db status           what the local database holds and how old it is
  bulwark demo                import the bundled demo data and scan the bundled demo image
  bulwark server --demo       run central (API, registry webhooks, scan queue, console) with the demo data

Configuration comes from flags, then environment variables (BULWARK_ + the flag
name in upper case with '-' as '_', e.g. BULWARK_DB_DIR, BULWARK_FAIL_ON), then
the YAML file given by --config or BULWARK_CONFIG (keys are flag names, optionally
nested under command names: "scan: {fail-on: high}").

Exit codes: 0 success, 1 policy failed (findings at or above --fail-on), 2 error.`,
		Example: `  # see it work, offline, on bundled real data
  bulwark demo

  # import advisories once, then gate a pipeline on fixable high and critical findings
  bulwark db import ./osv-go.zip ./known_exploited_vulnerabilities.json
  bulwark scan image --fail-on high --ignore-unfixed registry.example.com/team/app:1.2`,
		Version:       a.version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.configure(cmd)
		},
	}
	root.SetVersionTemplate("bulwark {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML configuration file (env BULWARK_CONFIG)")
	pf.String("log-level", "warn", "log level: debug, info, warn, error")
	pf.String("db-dir", "", "vulnerability database directory (default: user cache dir/bulwark/db)")
	root.AddCommand(a.scanCmd(), a.dbCmd(), a.demoCmd(), a.serverCmd(), a.postureCmd(), a.versionCmd())
	root.AddCommand(a.auditCmd())
	root.AddCommand(a.sensorCmd())
	root.AddCommand(a.admissionCmd())
	root.AddCommand(a.policyCmd())
	root.AddCommand(a.respondCmd())
	// Before the completion command is added: it takes its writer then.
	root.SetIn(a.env.Stdin)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	a.completionExamples(root)
	return root
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  bulwark version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "bulwark %s\n", a.version())
			return nil
		},
	}
}

// completionExamples adds cobra's completion command now, rather than when
// the CLI runs, to give it and its per-shell commands examples like every
// other command's.
func (a *app) completionExamples(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  # bash, for the current shell
  source <(bulwark completion bash)

  # zsh, for every new shell
  bulwark completion zsh > "${fpath[1]}/_bulwark"`
		for _, sh := range c.Commands() {
			switch sh.Name() {
			case "bash", "zsh":
				sh.Example = "  source <(bulwark completion " + sh.Name() + ")"
			case "fish":
				sh.Example = "  bulwark completion fish | source"
			case "powershell":
				sh.Example = "  bulwark completion powershell | Out-String | Invoke-Expression"
			}
		}
	}
}
