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
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/k8s"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/posture/live"
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
	cmd.AddCommand(a.postureManifestsCmd(), a.postureNodeCmd(), a.postureFixCmd(), a.postureClusterCmd())
	return cmd
}

type postureFlags struct {
	format, failOn, exceptions, pssVersion, output string
	trusted, hostPaths, controlFiles               []string
	upload                                         uploadFlags
}

// addReportFlags are the flags every posture target shares: output,
// pipeline gate and upload to central.
func addReportFlags(cmd *cobra.Command, f *postureFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "table", "output format: "+strings.Join(posture.Formats, ", "))
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a control of this severity or higher fails: low, medium, high, critical")
	addUploadFlags(cmd, &f.upload)
}

// addEvalFlags are the flags of the object evaluator (manifests, cluster).
func addEvalFlags(cmd *cobra.Command, f *postureFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.exceptions, "exceptions", "", "YAML file of exceptions (control, kind/namespace/name globs, reason, expires)")
	fl.StringVar(&f.pssVersion, "pss-version", "latest", `Pod Security Standards version: "latest" or "v1.N"`)
	fl.StringSliceVar(&f.trusted, "trusted-registry", nil, "trusted image repository prefix (repeatable); none skips the control")
	fl.StringSliceVar(&f.hostPaths, "allow-host-path", nil, "host path allowed for hostPath volumes (repeatable)")
	fl.StringSliceVar(&f.controlFiles, "controls-file", nil, "YAML file of custom CEL controls (kind: Control), repeatable")
}

func parseFailOn(s string) (vulndb.Severity, error) {
	if s == "" {
		return vulndb.SeverityUnknown, nil
	}
	sev, err := vulndb.ParseSeverity(s)
	if err != nil || sev == vulndb.SeverityUnknown {
		return 0, fmt.Errorf("--fail-on: want low, medium, high or critical")
	}
	return sev, nil
}

// postureEvaluator builds the evaluator from the flags.
func postureEvaluator(f *postureFlags) (*posture.Evaluator, error) {
	cfg := posture.Config{TrustedRegistries: f.trusted, AllowedHostPaths: f.hostPaths, PSSVersion: f.pssVersion}
	if f.exceptions != "" {
		fh, err := os.Open(f.exceptions)
		if err != nil {
			return nil, fmt.Errorf("--exceptions: %w", err)
		}
		cfg.Exceptions, err = posture.LoadExceptions(fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(f.controlFiles) > 0 {
		env, err := celeval.NewEnv()
		if err != nil {
			return nil, err
		}
		for _, p := range f.controlFiles {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("--controls-file: %w", err)
			}
			cs, err := posture.LoadCustomControls(env, p, data)
			if err != nil {
				return nil, err
			}
			cfg.Custom = append(cfg.Custom, cs...)
		}
	}
	return posture.New(cfg)
}

// finishPosture writes the report, uploads it when asked and maps the
// verdict to the exit code.
func (a *app) finishPosture(cmd *cobra.Command, f *postureFlags, target, name string, rep *posture.Report) error {
	failOn, err := parseFailOn(f.failOn)
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
	if err := a.uploadPosture(cmd.Context(), &f.upload, target, name, rep); err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%w: %d (see the report)", errPostureInput, len(rep.Errors))
	}
	if failOn != vulndb.SeverityUnknown {
		if n := rep.Failed(failOn); n > 0 {
			fmt.Fprintf(a.env.Stderr, "posture: %d failed checks at or above %s\n", n, failOn)
			return ErrPolicyFailed
		}
	}
	return nil
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
	addReportFlags(cmd, &f)
	addEvalFlags(cmd, &f)
	return cmd
}

func (a *app) runPostureManifests(cmd *cobra.Command, f *postureFlags, args []string) error {
	ctx := cmd.Context()
	if _, err := parseFailOn(f.failOn); err != nil {
		return err
	}
	ev, err := postureEvaluator(f)
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
	return a.finishPosture(cmd, f, "manifests", "", rep)
}

func (a *app) postureNodeCmd() *cobra.Command {
	var f postureFlags
	var opt posture.NodeOptions
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the CIS control-plane and worker-node checks on this host",
		Long: `Run the automatable CIS Kubernetes Benchmark (v1.9 numbering) control-plane and
worker-node checks on this host: flags of the running kube-apiserver,
kube-controller-manager, kube-scheduler, etcd and kubelet (read from
/proc/<pid>/cmdline, or from the static pod manifests when a component is not
running), the kubelet config file, and permissions and owners of kubeconfigs,
PKI, static pod manifests and the etcd data directory.

With --root, a prepared file tree (a node image, a copy of /etc and /var/lib)
is evaluated instead; its proc/<pid>/cmdline files stand for the processes.

Exit codes: 0 passed, 1 failures at or above --fail-on, 2 error.`,
		Example: `  bulwark posture node --fail-on high
  bulwark posture node --root /mnt/node-image --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := parseFailOn(f.failOn); err != nil {
				return err
			}
			rep, err := posture.EvaluateNode(cmd.Context(), opt)
			if err != nil {
				return err
			}
			return a.finishPosture(cmd, &f, "node", "", rep)
		},
	}
	addReportFlags(cmd, &f)
	cmd.Flags().StringVar(&opt.Root, "root", "/", "evaluate the host whose filesystem is mounted here")
	cmd.Flags().StringVar(&opt.KubeletConfig, "kubelet-config", "", "kubelet config file (default: the running kubelet's --config, else /var/lib/kubelet/config.yaml)")
	return cmd
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

// postureUpload is the body of POST /api/v1/posture/reports.
type postureUpload struct {
	Target string          `json:"target"` // manifests, node, cluster
	Name   string          `json:"name,omitempty"`
	Report *posture.Report `json:"report"`
}

// uploadPosture posts rep to central when --server is set.
// name labels the report in central (cluster context, host name); empty
// means the target's default.
func (a *app) uploadPosture(ctx context.Context, f *uploadFlags, target, name string, rep *posture.Report) error {
	if f.server == "" {
		return nil
	}
	if f.token == "" {
		return fmt.Errorf("--server needs --token (or BULWARK_TOKEN)")
	}
	if name == "" {
		name = target
		if h, err := os.Hostname(); err == nil && target == "node" {
			name = h
		}
	}
	var out struct {
		ID    int64   `json:"id"`
		Score float64 `json:"score"`
	}
	if err := postToCentral(ctx, f.server, f.token, f.serverCA, "/api/v1/posture/reports", postureUpload{Target: target, Name: name, Report: rep}, &out); err != nil {
		return fmt.Errorf("upload to %s: %w", f.server, err)
	}
	fmt.Fprintf(a.env.Stderr, "bulwark: uploaded posture report %d to %s (score %.1f)\n", out.ID, f.server, out.Score)
	return nil
}

func (a *app) postureFixCmd() *cobra.Command {
	var f postureFlags
	var diff bool
	var controls []string
	cmd := &cobra.Command{
		Use:   "fix PATH...",
		Short: "Write corrected manifests (comments and key order kept), or print a diff",
		Long: `Apply the machine-applicable patches of the failing controls to YAML manifests,
in place. Only the documents that change are rewritten (through a YAML node tree,
so comments and key order stay); the others are kept byte for byte. A file with
any document Bulwark cannot decode is not touched.

Exit codes: 0 done, 2 some files could not be fixed.`,
		Example: `  bulwark posture fix --diff deploy/
  bulwark posture fix --controls BW-K8S-0002,BW-K8S-0005 deploy/app.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ev, err := postureEvaluator(&f)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, c := range ev.Controls() {
				known[c.ID] = true
			}
			for _, c := range controls {
				if !known[c] {
					return fmt.Errorf("--controls: unknown control %q", c)
				}
			}
			dec, err := posture.NewDecoder(posture.Limits{})
			if err != nil {
				return err
			}
			var files []string
			for _, p := range args {
				fs, err := manifestFiles(p, ".yaml", ".yml")
				if err != nil {
					return fmt.Errorf("posture fix: %w", err)
				}
				files = append(files, fs...)
			}
			failed := 0
			for _, p := range files {
				if err := a.fixOne(cmd, ev, dec, p, controls, diff); err != nil {
					if cmd.Context().Err() != nil {
						return err
					}
					fmt.Fprintf(a.env.Stderr, "posture fix: %v\n", err)
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%w: %d files not fixed", errPostureInput, failed)
			}
			return nil
		},
	}
	addEvalFlags(cmd, &f)
	cmd.Flags().BoolVar(&diff, "diff", false, "print a unified diff instead of writing the files")
	cmd.Flags().StringSliceVar(&controls, "controls", nil, "only apply these controls' patches (default: every control with a patch)")
	return cmd
}

func (a *app) fixOne(cmd *cobra.Command, ev *posture.Evaluator, dec *posture.Decoder, p string, controls []string, diff bool) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	res, err := posture.Fix(cmd.Context(), ev, dec, p, data, controls)
	if err != nil {
		return err
	}
	if !res.Changed() {
		return nil
	}
	if diff {
		_, err := fmt.Fprint(cmd.OutOrStdout(), res.Diff())
		return err
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".bulwark-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(res.After); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stderr, "posture fix: %s: %d fixes applied\n", p, len(res.Applied))
	return nil
}

func (a *app) postureClusterCmd() *cobra.Command {
	var f postureFlags
	var kubeconfig, kubeContext string
	var opt live.Options
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Evaluate a live cluster through a kubeconfig (read-only)",
		Long: `Evaluate a running cluster: list the workloads, RBAC, services, network policies,
service accounts and namespaces the catalogue needs (read-only, paged) and run the
same controls as "posture manifests", plus the ones that need the whole cluster:
namespaces without a NetworkPolicy, default service accounts that mount tokens,
and each subject's rights summed over all its bindings.

The minimal ClusterRole is deploy/posture-rbac.yaml. A list the credentials may not
perform is reported under "unavailable" and the controls needing it are skipped.

Exit codes: 0 passed, 1 failures at or above --fail-on, 2 error.`,
		Example: `  bulwark posture cluster --fail-on critical
  bulwark posture cluster --context prod --namespace shop --namespace payments --format html -o posture.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := parseFailOn(f.failOn); err != nil {
				return err
			}
			ev, err := postureEvaluator(&f)
			if err != nil {
				return err
			}
			cfg, err := k8s.RESTConfig(kubeconfig, kubeContext)
			if err != nil {
				return fmt.Errorf("posture cluster: %w", err)
			}
			// The report and central name the cluster by its context, or
			// by the API server's address.
			name := kubeContext
			if name == "" {
				name = cfg.Host
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("posture cluster: %w", err)
			}
			opt.Source = "cluster " + name
			in, err := live.Collect(cmd.Context(), cs, opt)
			if err != nil {
				return fmt.Errorf("posture cluster: %w", err)
			}
			for kind, why := range in.Unavailable {
				fmt.Fprintf(a.env.Stderr, "posture cluster: %s not evaluated: %s\n", kind, why)
			}
			rep, err := ev.Evaluate(cmd.Context(), in)
			if err != nil {
				return err
			}
			return a.finishPosture(cmd, &f, "cluster", name, rep)
		},
	}
	addReportFlags(cmd, &f)
	addEvalFlags(cmd, &f)
	fl := cmd.Flags()
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fl.StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current one)")
	fl.StringSliceVarP(&opt.Namespaces, "namespace", "n", nil, "evaluate only these namespaces (repeatable; default all)")
	fl.Int64Var(&opt.PageSize, "page-size", 500, "objects per list call")
	return cmd
}
