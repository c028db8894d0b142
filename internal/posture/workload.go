package posture

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
)

func ptrTrue(b *bool) bool  { return b != nil && *b }
func ptrFalse(b *bool) bool { return b != nil && !*b }

func checkPrivileged(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		if sc := cv.c.SecurityContext; sc != nil && ptrTrue(sc.Privileged) {
			f.addC(cv, cv.label()+" sets securityContext.privileged=true", PatchOp{Op: "remove", Path: cv.path + "/securityContext/privileged"})
		}
	}
	return f.outcome()
}

func checkAllowPrivilegeEscalation(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		sc := cv.c.SecurityContext
		if sc == nil || !ptrFalse(sc.AllowPrivilegeEscalation) {
			msg := cv.label() + " does not set securityContext.allowPrivilegeEscalation=false"
			if escalates(sc) {
				// The API server refuses allowPrivilegeEscalation=false
				// with privileged or CAP_SYS_ADMIN: no patch until
				// BW-K8S-0001/0006 are fixed (a second pass of Fix or
				// the admission fixes then offers it).
				f.addC(cv, msg+" (it cannot while privileged or adding SYS_ADMIN)")
				continue
			}
			f.addC(cv, msg, setSecurityContext(cv, "allowPrivilegeEscalation", false))
		}
	}
	return f.outcome()
}

// escalates reports a security context the API server forbids
// allowPrivilegeEscalation=false with: privileged, or adding SYS_ADMIN.
func escalates(sc *corev1.SecurityContext) bool {
	if sc == nil {
		return false
	}
	if ptrTrue(sc.Privileged) {
		return true
	}
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Add {
			if strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_") == "SYS_ADMIN" {
				return true
			}
		}
	}
	return false
}

func checkRunAsNonRoot(_ *Config, t *target) outcome {
	podSC := t.pod.spec.SecurityContext
	podNonRoot := podSC != nil && ptrTrue(podSC.RunAsNonRoot)
	podUser := podSC != nil && podSC.RunAsUser != nil && *podSC.RunAsUser != 0
	var f failures
	for _, cv := range t.pod.containers {
		sc := cv.c.SecurityContext
		nonRoot, user := podNonRoot, podUser
		if sc != nil && sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if sc != nil && sc.RunAsUser != nil {
			user = *sc.RunAsUser != 0
			if *sc.RunAsUser == 0 {
				f.addC(cv, cv.label()+" sets securityContext.runAsUser=0", setSecurityContext(cv, "runAsNonRoot", true), PatchOp{Op: "remove", Path: cv.path + "/securityContext/runAsUser"})
				continue
			}
		}
		if !nonRoot && !user {
			f.addC(cv, cv.label()+" may run as root: neither securityContext.runAsNonRoot=true nor a non-zero runAsUser (container or pod)", setSecurityContext(cv, "runAsNonRoot", true))
		}
	}
	return f.outcome()
}

func checkReadOnlyRoot(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		if cv.kind == "ephemeralContainers" {
			continue
		}
		if sc := cv.c.SecurityContext; sc == nil || !ptrTrue(sc.ReadOnlyRootFilesystem) {
			f.addC(cv, cv.label()+" does not set securityContext.readOnlyRootFilesystem=true", setSecurityContext(cv, "readOnlyRootFilesystem", true))
		}
	}
	return f.outcome()
}

func checkDropAll(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		sc := cv.c.SecurityContext
		dropped := false
		if sc != nil && sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Drop {
				if strings.EqualFold(string(c), "ALL") {
					dropped = true
				}
			}
		}
		if dropped {
			continue
		}
		var op PatchOp
		switch {
		case sc == nil:
			op = PatchOp{Op: "add", Path: cv.path + "/securityContext", Value: map[string]any{"capabilities": map[string]any{"drop": []string{"ALL"}}}}
		case sc.Capabilities == nil:
			op = PatchOp{Op: "add", Path: cv.path + "/securityContext/capabilities", Value: map[string]any{"drop": []string{"ALL"}}}
		case sc.Capabilities.Drop == nil:
			op = PatchOp{Op: "add", Path: cv.path + "/securityContext/capabilities/drop", Value: []string{"ALL"}}
		default:
			op = PatchOp{Op: "add", Path: cv.path + "/securityContext/capabilities/drop/-", Value: "ALL"}
		}
		f.addC(cv, cv.label()+" does not drop ALL in securityContext.capabilities.drop", op)
	}
	return f.outcome()
}

// sensitiveCaps are capabilities that open a way out of the container or
// into other workloads' traffic.
var sensitiveCaps = map[string]bool{
	"ALL": true, "SYS_ADMIN": true, "NET_ADMIN": true, "SYS_PTRACE": true, "SYS_MODULE": true,
	"DAC_READ_SEARCH": true, "DAC_OVERRIDE": true, "NET_RAW": true, "BPF": true, "PERFMON": true,
	"SYS_RAWIO": true, "SYS_BOOT": true, "SYS_TIME": true, "MAC_ADMIN": true, "MAC_OVERRIDE": true,
	"SETUID": true, "SETGID": true, "SYSLOG": true, "SYS_CHROOT": true,
}

func checkAddedCaps(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		sc := cv.c.SecurityContext
		if sc == nil || sc.Capabilities == nil {
			continue
		}
		for i := len(sc.Capabilities.Add) - 1; i >= 0; i-- {
			c := strings.TrimPrefix(strings.ToUpper(string(sc.Capabilities.Add[i])), "CAP_")
			if sensitiveCaps[c] {
				f.addC(cv, fmt.Sprintf("%s adds capability %s in securityContext.capabilities.add", cv.label(), c),
					PatchOp{Op: "remove", Path: fmt.Sprintf("%s/securityContext/capabilities/add/%d", cv.path, i)})
			}
		}
	}
	return f.outcome()
}

func hostNamespaceCheck(field string, get func(*corev1.PodSpec) bool) checkFn {
	return func(_ *Config, t *target) outcome {
		if get(t.pod.spec) {
			return fail("pod spec sets "+field+"=true", []PatchOp{{Op: "remove", Path: t.pod.prefix + "/" + field}})
		}
		return pass()
	}
}

func checkHostPort(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		for i, p := range cv.c.Ports {
			if p.HostPort != 0 {
				f.addC(cv, fmt.Sprintf("%s sets ports[%d].hostPort=%d", cv.label(), i, p.HostPort),
					PatchOp{Op: "remove", Path: fmt.Sprintf("%s/ports/%d/hostPort", cv.path, i)})
			}
		}
	}
	return f.outcome()
}

func checkHostPath(cfg *Config, t *target) outcome {
	var f failures
	for i, v := range t.pod.spec.Volumes {
		if v.HostPath == nil || hostPathAllowed(cfg.AllowedHostPaths, v.HostPath.Path) {
			continue
		}
		f.add(fmt.Sprintf("volume %q mounts hostPath %q, outside the allowed paths", v.Name, v.HostPath.Path),
			PatchOp{Op: "replace", Path: fmt.Sprintf("%s/volumes/%d", t.pod.prefix, i), Value: emptyDirVolume{Name: v.Name, EmptyDir: struct{}{}}})
	}
	return f.outcome()
}

func hostPathAllowed(allowed []string, p string) bool {
	p = path.Clean("/" + p)
	for _, a := range allowed {
		a = path.Clean("/" + a)
		if p == a || strings.HasPrefix(p, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

func resourceCheck(kind string, get func(corev1.ResourceRequirements) corev1.ResourceList) checkFn {
	return func(_ *Config, t *target) outcome {
		var f failures
		for _, cv := range t.pod.containers {
			if cv.kind == "ephemeralContainers" {
				continue // ephemeral containers may not set resources
			}
			rl := get(cv.c.Resources)
			var missing []string
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := rl[r]; !ok {
					missing = append(missing, string(r))
				}
			}
			if len(missing) == 0 {
				continue
			}
			f.addC(cv, cv.label()+" sets no resources."+kind+"."+strings.Join(missing, " or "))
		}
		return f.outcome()
	}
}

func checkAutomountToken(_ *Config, t *target) outcome {
	if ptrFalse(t.pod.spec.AutomountServiceAccountToken) {
		return pass()
	}
	return fail("pod spec does not set automountServiceAccountToken=false (the service account's token is mounted into every container)",
		[]PatchOp{{Op: "add", Path: t.pod.prefix + "/automountServiceAccountToken", Value: false}})
}

func checkDefaultSA(_ *Config, t *target) outcome {
	sa := t.pod.spec.ServiceAccountName
	if sa == "" {
		sa = t.pod.spec.DeprecatedServiceAccount
	}
	if sa == "" || sa == "default" {
		return fail("pod runs as the namespace's default service account (serviceAccountName unset or \"default\")", nil)
	}
	return pass()
}

func checkDefaultNamespace(_ *Config, t *target) outcome {
	switch t.ref.Namespace {
	case "":
		return skip("metadata.namespace is not set in the manifest; it is decided when applied")
	case "default":
		return fail(t.ref.Kind+" is in the default namespace", nil)
	}
	return pass()
}

func checkLatestTag(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		ref, err := cv.image()
		if err != nil {
			f.addC(cv, cv.label()+" image "+strconv.Quote(cv.c.Image)+" is not a valid reference: "+err.Error())
			continue
		}
		if _, ok := ref.(reference.Digested); ok {
			continue
		}
		tagged, ok := ref.(reference.Tagged)
		if !ok {
			f.addC(cv, cv.label()+" image "+strconv.Quote(cv.c.Image)+" has neither tag nor digest (means :latest)")
		} else if tagged.Tag() == "latest" {
			f.addC(cv, cv.label()+" image "+strconv.Quote(cv.c.Image)+" uses the latest tag")
		}
	}
	return f.outcome()
}

func checkDigest(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		ref, err := cv.image()
		if err != nil {
			continue // reported by the latest-tag control
		}
		if _, ok := ref.(reference.Digested); !ok {
			f.addC(cv, cv.label()+" image "+strconv.Quote(cv.c.Image)+" is not pinned by digest")
		}
	}
	return f.outcome()
}

func checkTrustedRegistry(cfg *Config, t *target) outcome {
	if len(cfg.TrustedRegistries) == 0 {
		return skip("no trusted registries configured (--trusted-registry)")
	}
	var f failures
	for _, cv := range t.pod.containers {
		ref, err := cv.image()
		if err != nil {
			f.addC(cv, cv.label()+" image "+strconv.Quote(cv.c.Image)+" is not a valid reference")
			continue
		}
		if !trusted(cfg.TrustedRegistries, ref.Name()) {
			f.addC(cv, cv.label()+" image "+strconv.Quote(cv.c.Image)+" is not from a trusted registry")
		}
	}
	return f.outcome()
}

// trusted matches a normalized repository name ("docker.io/library/nginx")
// against prefixes ("registry.example.com", "ghcr.io/org/"); a prefix matches
// whole path elements only.
func trusted(prefixes []string, name string) bool {
	for _, p := range prefixes {
		p = strings.TrimSuffix(p, "/")
		if name == p || strings.HasPrefix(name, p+"/") {
			return true
		}
	}
	return false
}

// secretWords mark an environment variable name as holding a secret,
// unless it ends in one of notSecretSuffixes (it names where the secret is,
// or a setting about it). Plain substring tests: this runs for every
// variable of every container.
var (
	secretWords = []string{"password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api-key",
		"accesskey", "access_key", "access-key", "privatekey", "private_key", "private-key", "credential", "auth"}
	notSecretSuffixes = []string{"_file", "_path", "_dir", "_url", "_endpoint", "_host", "_port", "_user", "_username",
		"_ttl", "_timeout", "_expiry", "_enable", "_enabled", "_mode", "_type"}
)

func looksSecret(name string) bool {
	n := strings.ToLower(name)
	hit := false
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for _, s := range notSecretSuffixes {
		if strings.HasSuffix(n, s) {
			return false
		}
	}
	return true
}

func checkEnvSecrets(_ *Config, t *target) outcome {
	var f failures
	for _, cv := range t.pod.containers {
		for i, e := range cv.c.Env {
			if e.Value == "" || e.ValueFrom != nil || !looksSecret(e.Name) {
				continue
			}
			f.addC(cv, fmt.Sprintf("%s env[%d] %s holds a literal value that looks like a secret (use valueFrom.secretKeyRef)", cv.label(), i, e.Name))
		}
	}
	return f.outcome()
}

func probeCheck(name string, get func(*corev1.Container) *corev1.Probe) checkFn {
	return func(_ *Config, t *target) outcome {
		if !t.pod.long {
			return skip("run-to-completion workload: probes do not apply")
		}
		var f failures
		for _, cv := range t.pod.containers {
			if cv.kind != "containers" {
				continue
			}
			if get(cv.c) == nil {
				f.addC(cv, fmt.Sprintf("%s has no %s", cv.label(), name))
			}
		}
		return f.outcome()
	}
}

// emptyDirVolume is the replacement of a hostPath volume; a struct so that
// the fixed manifest keeps name first.
type emptyDirVolume struct {
	Name     string   `json:"name" yaml:"name"`
	EmptyDir struct{} `json:"emptyDir" yaml:"emptyDir"`
}
