package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// errPostureInput maps to exit 2 after the report was written: some input
// could not be read, so the verdict is incomplete.
var errPostureInput = errors.New("some inputs could not be read")

func (a *app) postureCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "posture",
		Short: "Measure Kubernetes manifests against CIS, NSA-CISA and Pod Security Standards",
		Example: `  bulwark posture manifests --fail-on high deploy/
  helm template ./chart | bulwark posture manifests -`,
	}
	cmd.AddCommand(a.postureManifestsCmd())
	return cmd
}

type postureFlags struct {
	format, failOn, exceptions, pssVersion, output string
	trusted, hostPaths                             []string
}

func (a *app) postureManifestsCmd() *cobra.Command {
	var f postureFlags
	cmd := &cobra.Command{
		Use:   "manifests PATH...",
		Short: "Evaluate YAML/JSON manifests (files, directories, - for stdin)",
		Long: `Evaluate Kubernetes manifests against Bulwark's posture catalogue: every upstream
Pod Security Standards check (k8s.io/pod-security-admission), data-plane hardening,
RBAC risk and network exposure, mapped to CIS, NSA-CISA, PSS and MITRE ATT&CK.

Exit codes: 0 passed, 1 failures at or above --fail-on, 2 error (including
documents that could not be decoded; the report is still written).`,
		Example: `  helm template ./chart | bulwark posture manifests -
  bulwark posture manifests --fail-on high --format sarif -o posture.sarif deploy/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runPostureManifests(cmd, &f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "table", "output format: "+strings.Join(posture.Formats, ", "))
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a control of this severity or higher fails: low, medium, high, critical")
	fl.StringVar(&f.exceptions, "exceptions", "", "YAML file of exceptions (control, kind/namespace/name globs, reason, expires)")
	fl.StringVar(&f.pssVersion, "pss-version", "latest", `Pod Security Standards version: "latest" or "v1.N"`)
	fl.StringSliceVar(&f.trusted, "trusted-registry", nil, "trusted image repository prefix (repeatable); none skips the control")
	fl.StringSliceVar(&f.hostPaths, "allow-host-path", nil, "host path allowed for hostPath volumes (repeatable)")
	return cmd
}

func (a *app) runPostureManifests(cmd *cobra.Command, f *postureFlags, args []string) error {
	ctx := cmd.Context()
	var failOn vulndb.Severity
	if f.failOn != "" {
		var err error
		if failOn, err = vulndb.ParseSeverity(f.failOn); err != nil || failOn == vulndb.SeverityUnknown {
			return fmt.Errorf("--fail-on: want low, medium, high or critical")
		}
	}
	cfg := posture.Config{TrustedRegistries: f.trusted, AllowedHostPaths: f.hostPaths, PSSVersion: f.pssVersion}
	if f.exceptions != "" {
		fh, err := os.Open(f.exceptions)
		if err != nil {
			return fmt.Errorf("--exceptions: %w", err)
		}
		cfg.Exceptions, err = posture.LoadExceptions(fh)
		fh.Close()
		if err != nil {
			return err
		}
	}
	ev, err := posture.New(cfg)
	if err != nil {
		return err
	}
	dec, err := posture.NewDecoder(posture.Limits{})
	if err != nil {
		return err
	}
	var in posture.Decoded
	for _, p := range args {
		if err := a.decodePath(ctx, dec, p, &in); err != nil {
			return err
		}
	}
	rep, err := ev.Evaluate(ctx, &in)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if f.output != "" {
		fh, err := os.Create(f.output)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		defer fh.Close()
		w = fh
	}
	if err := posture.Write(w, rep, f.format); err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%w: %d documents (see the report)", errPostureInput, len(rep.Errors))
	}
	if failOn != vulndb.SeverityUnknown {
		if n := rep.Failed(failOn); n > 0 {
			fmt.Fprintf(a.env.Stderr, "posture: %d failed checks at or above %s\n", n, failOn)
			return ErrPolicyFailed
		}
	}
	return nil
}

// decodePath reads a file, every .yaml/.yml/.json file under a directory
// (symlinks are not followed), or stdin for "-". A file that cannot be
// opened or is too large is recorded as an error and the others are read.
func (a *app) decodePath(ctx context.Context, dec *posture.Decoder, p string, in *posture.Decoded) error {
	if p == "-" {
		return dec.Decode(ctx, "-", a.env.Stdin, in)
	}
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("posture manifests: %w", err)
	}
	if !st.IsDir() {
		return decodeFile(ctx, dec, p, in)
	}
	return filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			in.Errors = append(in.Errors, posture.DecodeError{Source: path, Err: err.Error()})
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			return decodeFile(ctx, dec, path, in)
		}
		return nil
	})
}

func decodeFile(ctx context.Context, dec *posture.Decoder, path string, in *posture.Decoded) error {
	fh, err := os.Open(path)
	if err != nil {
		in.Errors = append(in.Errors, posture.DecodeError{Source: path, Err: err.Error()})
		return nil
	}
	defer fh.Close()
	if err := dec.Decode(ctx, path, fh, in); err != nil {
		if ctx.Err() != nil {
			return err
		}
		in.Errors = append(in.Errors, posture.DecodeError{Source: path, Err: err.Error()})
	}
	return nil
}
