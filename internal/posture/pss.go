package posture

import (
	"fmt"

	"github.com/bulwark-security/bulwark/internal/vulndb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// pssMeta is what Bulwark adds to an upstream Pod Security Standards check:
// the upstream package knows the check, not its frameworks.
type pssMeta struct {
	title, remediation string
	sev                vulndb.Severity
	cis                []string
	nsa                string
	mitre              []string
}

const (
	nsaPodSecurity = "Kubernetes Pod security: Pod security enforcement"
	nsaNonRoot     = "Kubernetes Pod security: Non-root containers and rootless container engines"
	nsaHardening   = "Kubernetes Pod security: Hardening container environments"
)

// pssMetadata covers every check id of k8s.io/pod-security-admission's
// DefaultChecks; a test fails when upstream adds one this table lacks.
var pssMetadata = map[string]pssMeta{
	"privileged": {"Privileged containers are disallowed", "Remove securityContext.privileged or set it to false.",
		vulndb.SeverityCritical, []string{"5.2.2"}, nsaPodSecurity, []string{"T1611"}},
	"hostNamespaces": {"Host namespaces (hostNetwork, hostPID, hostIPC) are disallowed", "Remove hostNetwork, hostPID and hostIPC from the pod spec.",
		vulndb.SeverityHigh, []string{"5.2.3", "5.2.4", "5.2.5"}, nsaPodSecurity, []string{"T1611"}},
	"hostPathVolumes": {"HostPath volumes are disallowed", "Replace hostPath volumes with emptyDir, configMap, secret or a PersistentVolumeClaim.",
		vulndb.SeverityHigh, []string{"5.2.12"}, nsaPodSecurity, []string{"T1611"}},
	"hostPorts": {"Host ports are disallowed", "Remove hostPort from container ports; expose the pod through a Service.",
		vulndb.SeverityMedium, []string{"5.2.13"}, nsaPodSecurity, []string{"T1133"}},
	"capabilities_baseline": {"Only the default capabilities may be added", "Remove capabilities outside the baseline set from securityContext.capabilities.add.",
		vulndb.SeverityHigh, []string{"5.2.9"}, nsaHardening, []string{"T1611"}},
	"appArmorProfile": {"AppArmor may not be disabled or overridden", "Use the runtime/default or a localhost AppArmor profile, never unconfined.",
		vulndb.SeverityMedium, []string{"5.7.3"}, nsaHardening, []string{"T1611"}},
	"seLinuxOptions": {"SELinux type may not be set to a custom value; user and role may not be set", "Remove seLinuxOptions.user/role and use an allowed SELinux type.",
		vulndb.SeverityMedium, []string{"5.7.3"}, nsaHardening, []string{"T1611"}},
	"procMount": {"The default /proc mask is required", "Remove securityContext.procMount or set it to Default.",
		vulndb.SeverityMedium, []string{"5.7.3"}, nsaHardening, []string{"T1611"}},
	"procMount_restricted": {"The default /proc mask is required (restricted)", "Remove securityContext.procMount or set it to Default.",
		vulndb.SeverityMedium, []string{"5.7.3"}, nsaHardening, []string{"T1611"}},
	"seccompProfile_baseline": {"Seccomp profile may not be Unconfined", "Set seccompProfile.type to RuntimeDefault or Localhost.",
		vulndb.SeverityMedium, []string{"5.7.2"}, nsaHardening, []string{"T1611"}},
	"seccompProfile_restricted": {"Seccomp profile must be RuntimeDefault or Localhost", "Set spec.securityContext.seccompProfile.type: RuntimeDefault.",
		vulndb.SeverityMedium, []string{"5.7.2"}, nsaHardening, []string{"T1611"}},
	"sysctls": {"Only safe sysctls may be set", "Remove sysctls outside the safe set from spec.securityContext.sysctls.",
		vulndb.SeverityMedium, []string{"5.7.3"}, nsaHardening, []string{"T1611"}},
	"windowsHostProcess": {"Windows HostProcess containers are disallowed", "Remove windowsOptions.hostProcess.",
		vulndb.SeverityCritical, []string{"5.2.11"}, nsaPodSecurity, []string{"T1611"}},
	"hostProbesAndHostLifecycle": {"Probes and lifecycle hooks may not target another host", "Remove the host field from httpGet/tcpSocket probes and lifecycle handlers.",
		vulndb.SeverityMedium, []string{"5.7.3"}, nsaHardening, []string{"T1090"}},
	"restrictedVolumes": {"Only the restricted volume types may be used", "Use only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret volumes.",
		vulndb.SeverityMedium, []string{"5.2.12"}, nsaPodSecurity, []string{"T1611"}},
	"allowPrivilegeEscalation": {"Privilege escalation must be disallowed", "Set securityContext.allowPrivilegeEscalation: false in every container.",
		vulndb.SeverityHigh, []string{"5.2.6"}, nsaPodSecurity, []string{"T1068"}},
	"runAsNonRoot": {"Containers must run as non-root", "Set securityContext.runAsNonRoot: true on the pod or every container.",
		vulndb.SeverityMedium, []string{"5.2.7"}, nsaNonRoot, []string{"T1611"}},
	"runAsUser": {"Containers may not set runAsUser to 0", "Set runAsUser to a non-zero UID, or remove it.",
		vulndb.SeverityMedium, []string{"5.2.7"}, nsaNonRoot, []string{"T1611"}},
	"capabilities_restricted": {"Containers must drop ALL capabilities and add only NET_BIND_SERVICE", "Set securityContext.capabilities.drop: [ALL] and add nothing but NET_BIND_SERVICE.",
		vulndb.SeverityMedium, []string{"5.2.8", "5.2.9", "5.2.10"}, nsaHardening, []string{"T1611"}},
}

// pssCheck is one upstream check, resolved to the version evaluated.
type pssCheck struct {
	id        string
	level     api.Level
	fn        policy.CheckPodFn // nil when the check does not exist at this version
	overrides []policy.CheckID
}

// resolvePSS picks each upstream check's revision for version v, the way
// the upstream evaluator does (the newest MinimumVersion not after v).
func resolvePSS(v api.Version) []pssCheck {
	var out []pssCheck
	for _, c := range policy.DefaultChecks() {
		pc := pssCheck{id: string(c.ID), level: c.Level}
		for _, vc := range c.Versions {
			if !v.Older(vc.MinimumVersion) {
				pc.fn = vc.CheckPod
				pc.overrides = vc.OverrideCheckIDs
			}
		}
		out = append(out, pc)
	}
	return out
}

func pssControls(checks []pssCheck) []Control {
	out := make([]Control, 0, len(checks))
	for _, pc := range checks {
		m, ok := pssMetadata[pc.id]
		if !ok {
			m = pssMeta{title: "Pod Security Standards check " + pc.id, sev: vulndb.SeverityMedium,
				remediation: "See the Pod Security Standards for " + pc.id + ".", nsa: nsaPodSecurity}
		}
		fn := pc.fn
		out = append(out, Control{
			ID: "BW-PSS-" + pc.id, Title: m.title, Severity: m.sev, CIS: m.cis, NSA: m.nsa, MITRE: m.mitre,
			PSS: string(pc.level), Automated: true, Upstream: pc.id, Remediation: m.remediation,
			Rationale: fmt.Sprintf("Pod Security Standards %s level, evaluated by the upstream k8s.io/pod-security-admission check %q.", pc.level, pc.id),
			scope:     scopeWorkload,
			check: func(_ *Config, t *target) outcome {
				if fn == nil {
					return skip("check not part of the Pod Security Standards version evaluated")
				}
				r := fn(t.pod.meta, t.pod.spec)
				if r.Allowed {
					return pass()
				}
				msg := r.ForbiddenReason
				if r.ForbiddenDetail != "" {
					msg += " (" + r.ForbiddenDetail + ")"
				}
				o := fail(msg, nil)
				o.details = pssDetails(fn, t.pod, msg)
				return o
			},
		})
	}
	return out
}

// pssDetails attributes a failed upstream check to containers without
// reading its message: the check is run again on the pod with no
// containers (a failure then is the pod's own) and with each container
// alone (a failure then is that container's). Only failures pay for it.
func pssDetails(fn policy.CheckPodFn, pod *podView, msg string) []Detail {
	spec := *pod.spec
	spec.InitContainers, spec.Containers, spec.EphemeralContainers = nil, nil, nil
	if !fn(pod.meta, &spec).Allowed {
		return []Detail{{Message: msg, Problem: msg}}
	}
	var out []Detail
	for _, cv := range pod.containers {
		one := spec
		switch cv.kind {
		case "initContainers":
			one.InitContainers = []corev1.Container{*cv.c}
		case "ephemeralContainers":
			one.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon(*cv.c)}}
		default:
			one.Containers = []corev1.Container{*cv.c}
		}
		if !fn(pod.meta, &one).Allowed {
			out = append(out, Detail{Container: cv.c.Name, ContainerKind: cv.kind, Image: cv.c.Image, Message: msg, Problem: msg})
		}
	}
	if len(out) == 0 { // only the combination fails
		out = []Detail{{Message: msg, Problem: msg}}
	}
	return out
}

// pssAllowed says whether the upstream evaluator would admit the pod at
// level, given each check's verdict: restricted runs the restricted checks
// and the baseline checks no active restricted check overrides.
func pssAllowed(checks []pssCheck, failed func(i int) bool, level api.Level) bool {
	overridden := map[string]bool{}
	if level == api.LevelRestricted {
		for _, c := range checks {
			if c.fn != nil && c.level == api.LevelRestricted {
				for _, o := range c.overrides {
					overridden[string(o)] = true
				}
			}
		}
	}
	for i, c := range checks {
		if c.fn == nil || (c.level == api.LevelRestricted && level != api.LevelRestricted) || overridden[c.id] {
			continue
		}
		if failed(i) {
			return false
		}
	}
	return true
}

// pssLevel is the highest level the pod meets together with every level
// below it.
func pssLevel(checks []pssCheck, failed func(i int) bool) api.Level {
	if !pssAllowed(checks, failed, api.LevelBaseline) {
		return api.LevelPrivileged
	}
	if !pssAllowed(checks, failed, api.LevelRestricted) {
		return api.LevelBaseline
	}
	return api.LevelRestricted
}
