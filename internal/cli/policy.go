package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-security/bulwark/internal/admission"
	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/k8s"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/scan"
)

func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Apply Bulwark's deployment policies in a pipeline (the admission webhook's verdict, before deploying)",
		Example: `  bulwark policy test -f policies/ deploy/
  helm template ./chart | bulwark policy test -f prod.yaml --format sarif -o policy.sarif -
  kubectl get namespaces -o yaml > ns.yaml && bulwark policy test -f policies/ ns.yaml deploy/`,
	}
	cmd.AddCommand(a.policyTestCmd())
	return cmd
}

// loadPolicySet loads policy files and directories with the CEL
// environment every command shares.
func loadPolicySet(ctx context.Context, paths []string) (*policy.Set, error) {
	env, err := celeval.NewEnv()
	if err != nil {
		return nil, err
	}
	l, err := policy.NewLoader(env, nil)
	if err != nil {
		return nil, err
	}
	return l.LoadFiles(ctx, paths...)
}

func (a *app) policyTestCmd() *cobra.Command {
	var files []string
	var format, output, server, token, serverCA string
	var nsLabels []string
	var fromCluster bool
	var kubeconfig, kubeContext string
	opt := gateOptions{}
	cmd := &cobra.Command{
		Use:   "test -f POLICY MANIFEST...",
		Short: "Judge Kubernetes manifests with the policies the admission webhook enforces",
		Long: `Evaluate manifests (files, directories, or - for stdin) with the same evaluator
as the admission webhook: configuration baseline, provenance, custom CEL rules
and, with --server, vulnerabilities from central's scan results. Every pod and
pod-creating controller (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
CronJob, ReplicationController) is judged as a CREATE; other kinds are listed
as skipped.

Without --server, vulnerability rules see every image as unavailable: they
are violations unless --fail-open is given (then a note).

A manifest without metadata.namespace is judged in --namespace. Namespace
objects among the manifests give their namespaces' labels to namespace
selectors and to CEL's namespaceObject, as the API server gives them to the
webhook. For the other namespaces the labels come from --namespace-labels,
then, with --cluster, from the cluster itself (read-only: get namespaces).
A namespace whose labels are known nowhere is judged as if every namespace
selector matched it, and the report says so in a note. ConfigMaps among the
manifests in --params-namespace (or without a namespace) are the params of
policies whose spec.paramRef names them, as the webhook reads them from its
own namespace; with --cluster the others are read from that namespace.
Objects of a policy's spec.paramKind among the manifests are its params (with
--cluster, the others are read from the cluster).

Exit codes: 0 every object admitted (warn and audit included), 1 an object
would be denied, 2 error (unreadable input, invalid policy).`,
		Example: `  bulwark policy test -f policies/ deploy/
  bulwark policy test -f prod.yaml --namespace prod-shop --server https://bulwark:8443 --token "$TOKEN" app.yaml
  helm template ./chart | bulwark policy test -f prod.yaml --format sarif -o policy.sarif -

  # namespaces' labels given by hand, or read from the target cluster
  bulwark policy test -f prod.yaml --namespace-labels shop=env=prod,team=web deploy/
  bulwark policy test -f prod.yaml --cluster --context prod-eu deploy/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(files) == 0 {
				return fmt.Errorf("-f POLICY is required")
			}
			set, err := loadPolicySet(ctx, files)
			if err != nil {
				return err
			}
			var images policy.ImageSource
			if server != "" {
				im, err := a.centralImages(server, token, serverCA)
				if err != nil {
					return err
				}
				images = im
			}
			opt.images = images
			if opt.namespaceLabels, err = parseNamespaceLabels(nsLabels); err != nil {
				return err
			}
			if fromCluster {
				cfg, err := k8s.RESTConfig(kubeconfig, kubeContext)
				if err != nil {
					return fmt.Errorf("--cluster: %w", err)
				}
				if opt.cluster, err = kubernetes.NewForConfig(cfg); err != nil {
					return fmt.Errorf("--cluster: %w", err)
				}
				if opt.clusterParams, err = admission.NewClientParamObjects(cfg, time.Hour); err != nil {
					return fmt.Errorf("--cluster: %w", err)
				}
			}
			rep, err := testManifests(ctx, set, args, a.env.Stdin, opt)
			if err != nil {
				return err
			}
			out := a.env.Stdout
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			if err := policy.WriteReport(out, rep, format); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if len(rep.Errors) > 0 {
				return fmt.Errorf("%d input error(s): %s", len(rep.Errors), rep.Errors[0])
			}
			if n := rep.Denied(); n > 0 {
				fmt.Fprintf(a.env.Stderr, "bulwark: policy failed: %d object(s) would be denied\n", n)
				return ErrPolicyFailed
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&files, "policy", "f", nil, "policy file or directory (repeatable)")
	fl.StringVar(&format, "format", "table", "output format: "+strings.Join(policy.Formats, ", "))
	fl.StringVarP(&output, "output", "o", "", "write the report to this file instead of stdout")
	fl.StringVar(&opt.namespace, "namespace", "default", "namespace of manifests that do not set one")
	fl.StringVar(&opt.paramsNamespace, "params-namespace", "bulwark", "namespace of the ConfigMaps policies name in spec.paramRef (the webhook's)")
	fl.StringArrayVar(&nsLabels, "namespace-labels", nil, "labels of a namespace not among the manifests: NAMESPACE=KEY=VALUE[,KEY=VALUE...]; repeatable")
	fl.BoolVar(&fromCluster, "cluster", false, "read the namespaces (and paramRef ConfigMaps) not among the manifests from the cluster of --kubeconfig/--context")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig for --cluster (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fl.StringVar(&kubeContext, "context", "", "kubeconfig context for --cluster")
	fl.StringVar(&server, "server", "", "central (https://host:8443) to read image findings from")
	fl.StringVar(&token, "token", "", "API token for --server, role agent or analyst (env BULWARK_TOKEN)")
	fl.StringVar(&serverCA, "server-ca", "", "PEM file with the CA that signed --server's certificate")
	fl.BoolVar(&opt.failOpen, "fail-open", false, "admit images whose findings cannot be had (as the webhook's --fail-open)")
	fl.BoolVar(&opt.applyFixes, "apply-fixes", false, "judge each workload as the cluster would with the mutating webhook installed: the policies' configuration.mutate fixes first (listed in the report)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(policy.Formats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// testManifests decodes manifests with posture's decoder and judges every
// workload as a CREATE.
func testManifests(ctx context.Context, set *policy.Set, paths []string, stdin io.Reader, opt gateOptions) (*policy.Report, error) {
	namespace, paramsNamespace := opt.namespace, opt.paramsNamespace
	dec, err := posture.NewDecoder(posture.Limits{})
	if err != nil {
		return nil, err
	}
	var in posture.Decoded
	rep := &policy.Report{PolicyVersion: set.Version()}
	for _, p := range paths {
		if p == "-" {
			if err := dec.Decode(ctx, "-", stdin, &in); err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
			continue
		}
		files, err := manifestFiles(p, ".yaml", ".yml", ".json")
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		for _, f := range files {
			r, err := os.Open(f)
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
				continue
			}
			err = dec.Decode(ctx, f, r, &in)
			r.Close()
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
		}
	}
	for _, e := range in.Errors {
		rep.Errors = append(rep.Errors, e.Error())
	}
	kinds := map[string]bool{}
	for _, k := range policy.Kinds() {
		kinds[k] = true
	}
	// Namespace objects are the context of the workloads in them;
	// ConfigMaps in the params namespace the params of paramRef policies.
	namespaces := map[string]*corev1.Namespace{}
	static := policy.StaticParams{}
	var params policy.ParamSource = static
	used := make([]bool, len(in.Objects)) // by index: taken as context, not judged
	paramKinds := set.ParamKinds()
	var objects policy.StaticObjects
	for i := range in.Objects {
		o := &in.Objects[i]
		if paramKinds[[2]string{o.Ref.APIVersion, o.Ref.Kind}] {
			obj, err := manifestObject(o)
			if err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s:%d: %s/%s: %v", o.Ref.Source, o.Ref.Line, o.Ref.Kind, o.Ref.Name, err))
			} else {
				objects = append(objects, policy.NewParamResource(obj))
			}
			used[i] = true
		}
		switch o := in.Objects[i].Typed.(type) {
		case *corev1.Namespace:
			namespaces[o.Name] = o
			used[i] = true
		case *corev1.ConfigMap:
			if o.Namespace == "" || o.Namespace == paramsNamespace {
				static[o.Name] = o.Data
				used[i] = true
			}
		}
	}
	nsctx := &gateNamespaces{given: namespaces, labels: opt.namespaceLabels, needed: set.UsesNamespaceLabels()}
	if opt.cluster != nil {
		nsctx.cluster = admission.NewClientNamespaces(opt.cluster, time.Hour)
		params = chainParams{static, admission.NewClientConfigMaps(opt.cluster, paramsNamespace, time.Hour)}
	}
	var paramObjects policy.ObjectParamSource = objects
	if opt.clusterParams != nil {
		paramObjects = chainObjects{objects, opt.clusterParams}
	}
	for i := range in.Objects {
		o := &in.Objects[i]
		if used[i] {
			continue
		}
		if o.Typed == nil || !kinds[o.Ref.Kind] {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s:%d: %s/%s: not a workload", o.Ref.Source, o.Ref.Line, o.Ref.Kind, o.Ref.Name))
			continue
		}
		ns := o.Ref.Namespace
		if ns == "" {
			ns = namespace
		}
		nsObj, err := nsctx.get(ctx, ns)
		if err != nil {
			return nil, err
		}
		req := &policy.Request{Operation: "CREATE", Kind: o.Ref.Kind, Namespace: ns, Name: o.Ref.Name, Object: o.Typed,
			NamespaceObject: nsObj, Params: params, ParamObjects: paramObjects, User: policy.UserInfo{Username: "bulwark-policy-test"}, Images: opt.images, FailOpen: opt.failOpen}
		var fixes []policy.Fix
		if opt.applyFixes && set.Mutates() {
			if fixes, err = applyFixes(ctx, set, req); err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s:%d: %s/%s: fixes: %v", o.Ref.Source, o.Ref.Line, o.Ref.Kind, o.Ref.Name, err))
			}
		}
		d := set.Evaluate(ctx, req)
		rep.Items = append(rep.Items, policy.ReportItem{Source: o.Ref.Source, Line: o.Ref.Line, Kind: o.Ref.Kind, Namespace: ns, Name: o.Ref.Name,
			Decision: d, Fixes: fixes})
		if len(fixes) > 0 {
			var ids []string
			for _, f := range fixes {
				ids = append(ids, f.Control+" ("+f.Policy+")")
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: %s %s/%s judged after the mutating webhook's fixes: %s", o.Ref.Source, o.Ref.Line,
				o.Ref.Kind, ns, o.Ref.Name, strings.Join(ids, ", ")))
		}
	}
	rep.Notes = append(rep.Notes, nsctx.notes()...)
	return rep, nil
}

// scanPolicyGate judges a scanned image with the vulnerability and
// provenance rules of --policy, as the webhook would judge a Pod running
// it in --policy-namespace: the same evaluator, fed with this scan's
// findings instead of central's.
func (a *app) scanPolicyGate(ctx context.Context, f *scanFlags, res *scan.Result) error {
	if f.policy == "" {
		return nil
	}
	set, err := loadPolicySet(ctx, []string{f.policy})
	if err != nil {
		return err
	}
	ref := imageRefOf(res)
	rep := &policy.ImageReport{Ref: ref, Digest: res.Target.Digest, Scanned: true}
	for _, fd := range res.Findings {
		rep.Findings = append(rep.Findings, FindingForPolicy(&fd))
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "scan", Namespace: f.policyNamespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "image", Image: ref}}},
	}
	req := &policy.Request{Operation: "CREATE", Kind: "Pod", Namespace: f.policyNamespace, Name: "scan", Object: pod,
		User: policy.UserInfo{Username: "bulwark-scan"}, Images: policy.StaticImages{ref: rep}, ImageRulesOnly: true}
	d := set.Evaluate(ctx, req)
	prep := &policy.Report{PolicyVersion: set.Version(), Items: []policy.ReportItem{{Source: res.Target.Name, Kind: "Image",
		Namespace: f.policyNamespace, Name: ref, Decision: d}}}
	if err := policy.WriteReport(a.env.Stderr, prep, "table"); err != nil {
		return err
	}
	if !d.Allowed {
		fmt.Fprintf(a.env.Stderr, "bulwark: policy failed: %s\n", d.Message("image "+ref))
		return ErrPolicyFailed
	}
	return nil
}

// imageRefOf is the reference a Pod would use for the scanned image: the
// registry reference as given, or the first repo tag of an archive.
func imageRefOf(res *scan.Result) string {
	name := res.Target.Name
	for _, p := range []string{"docker-archive:", "oci-archive:", "oci-layout:"} {
		if strings.HasPrefix(name, p) {
			if len(res.Target.RepoTags) > 0 {
				return res.Target.RepoTags[0]
			}
			return "unknown/archive@" + res.Target.Digest
		}
	}
	return name
}

// FindingForPolicy converts a scan finding into the policy's view.
func FindingForPolicy(f *scan.Finding) policy.Finding {
	out := policy.Finding{Package: f.Package.Name, Version: f.Package.Version, FixedVersions: f.FixedVersions}
	if v := f.Vulnerability; v != nil {
		out.ID, out.Aliases, out.Severity, out.KEV = v.ID, v.Aliases, v.Severity, v.KEV != nil
		for _, c := range v.CVSS {
			out.CVSS = max(out.CVSS, c.Score)
		}
	}
	return out
}

// applyFixes replaces req's object by the one the mutating webhook would
// let through (policy.Set.Mutate) and returns the fixes.
func applyFixes(ctx context.Context, set *policy.Set, req *policy.Request) ([]policy.Fix, error) {
	raw, err := json.Marshal(req.Object)
	if err != nil {
		return nil, err
	}
	m, err := set.Mutate(ctx, req, raw)
	if err != nil || m.Object == nil {
		return nil, err
	}
	obj, err := policy.DecodeObject(req.Kind, m.Object)
	if err != nil {
		return nil, err
	}
	req.Object = obj
	return m.Fixes, nil
}
