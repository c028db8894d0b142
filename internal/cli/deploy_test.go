package cli

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/testimage"
)

// TestDeployManifests keeps the shipped Kubernetes manifests (deploy/) honest:
// they decode, every bulwark command line in them parses against the real
// command tree (a renamed or removed flag fails here, not in a user's
// cluster), and Bulwark's own posture controls find only the failures listed
// below, each with the reason it is accepted.
func TestDeployManifests(t *testing.T) {
	root, err := testimage.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, dir := range []string{"deploy", "deploy/kubernetes"} {
		m, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if filepath.Base(f) != "kustomization.yaml" {
				files = append(files, f)
			}
		}
	}
	if len(files) < 6 {
		t.Fatalf("found %d manifest files under deploy/: %v", len(files), files)
	}

	dec, err := posture.NewDecoder(posture.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var in posture.Decoded
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		err = dec.Decode(t.Context(), filepath.ToSlash(rel), r, &in)
		r.Close()
		if err != nil {
			t.Fatalf("decode %s: %v", rel, err)
		}
	}
	if len(in.Errors) > 0 {
		t.Fatalf("manifests that do not decode: %v", in.Errors)
	}

	// Every bulwark command line parses.
	a := &app{env: Env{Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: io.Discard},
		logLvl: new(slog.LevelVar), log: slog.New(slog.DiscardHandler)}
	commands := 0
	for _, o := range in.Objects {
		var spec *corev1.PodSpec
		switch w := o.Typed.(type) {
		case *appsv1.Deployment:
			spec = &w.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = &w.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range spec.Containers {
			if !strings.Contains(c.Image, "/bulwark-security/bulwark") {
				continue
			}
			commands++
			cmd, rest, err := a.rootCmd().Find(c.Args)
			if err != nil || cmd.Parent() == nil || !cmd.Runnable() {
				t.Errorf("%s container %s: %q is not a bulwark command (%v)", o.Ref, c.Name, c.Args, err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s container %s: bulwark %s: %v", o.Ref, c.Name, cmd.CommandPath(), err)
			}
			if args := cmd.Flags().Args(); len(args) > 0 {
				t.Errorf("%s container %s: stray arguments %q", o.Ref, c.Name, args)
			}
		}
	}
	if commands != 3 {
		t.Errorf("%d bulwark containers, want 3 (sensor, admission, respond)", commands)
	}

	// Bulwark's own controls, with the failures we accept and why.
	ev, err := posture.New(posture.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ev.Evaluate(t.Context(), &in)
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]string{
		// The image reference is a placeholder until releases are published
		// with digests (deploy/kubernetes/README.md says to pin one).
		"BW-K8S-0017 Deployment/bulwark/bulwark-admission": "placeholder tag",
		"BW-K8S-0017 Deployment/bulwark/bulwark-respond":   "placeholder tag",
		"BW-K8S-0017 DaemonSet/bulwark/bulwark-sensor":     "placeholder tag",
		// These talk to the Kubernetes API with their service account.
		"BW-K8S-0014 Deployment/bulwark/bulwark-admission": "reads namespaces",
		"BW-K8S-0014 Deployment/bulwark/bulwark-respond":   "performs response actions",
		"BW-K8S-0014 DaemonSet/bulwark/bulwark-sensor":     "watches the node's pods",
		// respond serves no port: there is nothing to probe but the process.
		"BW-K8S-0020 Deployment/bulwark/bulwark-respond": "no port",
		"BW-K8S-0021 Deployment/bulwark/bulwark-respond": "no port",
		// The sensor loads eBPF programs and reads every process and cgroup
		// of the node: privileged, host PID namespace, the host's /sys, a
		// spool on the host that survives pod restarts. It runs as root.
		"BW-K8S-0001 DaemonSet/bulwark/bulwark-sensor":                      "eBPF",
		"BW-PSS-privileged DaemonSet/bulwark/bulwark-sensor":                "eBPF",
		"BW-K8S-0002 DaemonSet/bulwark/bulwark-sensor":                      "privileged implies it",
		"BW-PSS-allowPrivilegeEscalation DaemonSet/bulwark/bulwark-sensor":  "privileged implies it",
		"BW-K8S-0003 DaemonSet/bulwark/bulwark-sensor":                      "root for eBPF",
		"BW-PSS-runAsNonRoot DaemonSet/bulwark/bulwark-sensor":              "root for eBPF",
		"BW-K8S-0005 DaemonSet/bulwark/bulwark-sensor":                      "needs CAP_BPF, CAP_PERFMON",
		"BW-PSS-capabilities_restricted DaemonSet/bulwark/bulwark-sensor":   "needs CAP_BPF, CAP_PERFMON",
		"BW-PSS-seccompProfile_restricted DaemonSet/bulwark/bulwark-sensor": "bpf() is refused by RuntimeDefault",
		"BW-K8S-0008 DaemonSet/bulwark/bulwark-sensor":                      "host PID namespace",
		"BW-PSS-hostNamespaces DaemonSet/bulwark/bulwark-sensor":            "host PID namespace",
		"BW-K8S-0011 DaemonSet/bulwark/bulwark-sensor":                      "host /sys, spool, runtime state",
		"BW-PSS-hostPathVolumes DaemonSet/bulwark/bulwark-sensor":           "host /sys, spool, runtime state",
		"BW-PSS-restrictedVolumes DaemonSet/bulwark/bulwark-sensor":         "host /sys, spool, runtime state",
		// The sensor's health is its metrics and its alerts; a probe on
		// the metrics port is left to the operator.
		"BW-K8S-0020 DaemonSet/bulwark/bulwark-sensor": "metrics",
		"BW-K8S-0021 DaemonSet/bulwark/bulwark-sensor": "metrics",
	}
	var failed []string
	for _, r := range rep.Results {
		if r.Status == posture.StatusFail {
			failed = append(failed, r.Control+" "+rep.Objects[r.Object].String())
		}
	}
	var want []string
	for k := range accepted {
		want = append(want, k)
	}
	slices.Sort(failed)
	slices.Sort(want)
	if diff := cmp.Diff(want, failed); diff != "" {
		t.Errorf("posture failures on deploy/ (-accepted +found):\n%s", diff)
	}
}
