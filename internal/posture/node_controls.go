package posture

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-security/bulwark/internal/vulndb"
	"sigs.k8s.io/yaml"
)

// CISVersion is the CIS Kubernetes Benchmark whose section numbers the
// node controls carry (the same numbering kube-bench's cfg/cis-1.9 uses).
const CISVersion = "CIS Kubernetes Benchmark v1.9.0"

// kubeletView is the kubelet's effective configuration: flags override the
// config file, the config file overrides the defaults.
type kubeletView struct {
	proc    *process // nil when no kubelet runs
	cfgPath string
	cfg     map[string]any // nil when there is no config file
	ref     ObjectRef
}

func (h *host) readKubelet(override string) {
	k := &kubeletView{}
	if ps := h.procs[compKubelet]; len(ps) > 0 {
		k.proc = ps[0]
		k.ref = ps[0].ref
	}
	k.cfgPath = override
	if k.cfgPath == "" && k.proc != nil {
		k.cfgPath, _ = k.proc.flag("config")
	}
	if k.cfgPath == "" {
		k.cfgPath = "/var/lib/kubelet/config.yaml"
	}
	data, err := readBounded(h.root, rel(k.cfgPath), 4<<20)
	switch {
	case err == nil:
		if err := yaml.Unmarshal(data, &k.cfg); err != nil {
			h.readErrs = append(h.readErrs, DecodeError{Source: k.cfgPath, Err: "kubelet config: " + err.Error()})
			k.cfg = nil
		} else if k.cfg == nil {
			k.cfg = map[string]any{}
		}
	case !errors.Is(err, fs.ErrNotExist) || override != "":
		h.readErrs = append(h.readErrs, DecodeError{Source: k.cfgPath, Err: "kubelet config: " + err.Error()})
	}
	if k.proc == nil && k.cfg == nil {
		return
	}
	if k.proc == nil {
		k.ref = ObjectRef{Source: k.cfgPath, Kind: "KubeletConfiguration", Name: "kubelet"}
	}
	h.kubelet = k
}

// setting is the kubelet's effective value of a setting and where it came
// from. Kubelet defaults differ between flags and the config file (e.g.
// anonymous auth is on by flag default, off by config default), so both
// defaults are given.
func (k *kubeletView) setting(flag, cfgPath, cfgDefault, flagDefault string) (string, string) {
	if k.proc != nil {
		if v, ok := k.proc.flag(flag); ok {
			return v, "--" + flag
		}
	}
	if k.cfg != nil {
		var cur any = k.cfg
		for _, p := range strings.Split(cfgPath, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = m[p]
		}
		if cur != nil {
			return fmt.Sprint(cur), cfgPath + " in " + k.cfgPath
		}
		return cfgDefault, "default of " + cfgPath
	}
	return flagDefault, "default of --" + flag
}

func kubeletCheck(fn func(k *kubeletView) outcome) nodeCheckFn {
	return func(h *host) []nodeOutcome {
		if h.kubelet == nil {
			return []nodeOutcome{{ObjectRef{Kind: "Process", Name: compKubelet}, skip("no kubelet runs on this host and no kubelet config file was found")}}
		}
		return []nodeOutcome{{h.kubelet.ref, fn(h.kubelet)}}
	}
}

// kubeletIs fails unless the effective setting satisfies ok.
func kubeletIs(flag, cfgPath, cfgDefault, flagDefault, want string, ok func(string) bool) nodeCheckFn {
	return kubeletCheck(func(k *kubeletView) outcome {
		v, from := k.setting(flag, cfgPath, cfgDefault, flagDefault)
		if ok(v) {
			return pass()
		}
		return fail(fmt.Sprintf("%s is %q (from %s); want %s", flag, v, from, want), nil)
	})
}

func procCheck(comp string, fn func(p *process) outcome) nodeCheckFn {
	return func(h *host) []nodeOutcome {
		ps := h.procs[comp]
		if len(ps) == 0 {
			return []nodeOutcome{{ObjectRef{Kind: "Process", Name: comp}, skip(comp + " does not run on this host (no process, no static pod manifest)")}}
		}
		out := make([]nodeOutcome, 0, len(ps))
		for _, p := range ps {
			out = append(out, nodeOutcome{p.ref, fn(p)})
		}
		return out
	}
}

func flagEquals(comp, flag, def, want string) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		v, ok := p.flag(flag)
		if !ok {
			v = def
		}
		if strings.EqualFold(v, want) {
			return pass()
		}
		if !ok {
			return fail(fmt.Sprintf("--%s is not set (default %q); want %q", flag, def, want), nil)
		}
		return fail(fmt.Sprintf("--%s=%s; want %q", flag, v, want), nil)
	})
}

func flagNotEquals(comp, flag, def, bad string) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		v, ok := p.flag(flag)
		if !ok {
			v = def
		}
		if !strings.EqualFold(v, bad) {
			return pass()
		}
		return fail(fmt.Sprintf("--%s is %q; must not be %q", flag, v, bad), nil)
	})
}

func flagsSet(comp string, flags ...string) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		var missing []string
		for _, f := range flags {
			if v, ok := p.flag(f); !ok || v == "" {
				missing = append(missing, "--"+f)
			}
		}
		if len(missing) == 0 {
			return pass()
		}
		return fail(strings.Join(missing, " and ")+" not set", nil)
	})
}

func flagNotSet(comp, flag string) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		if _, ok := p.flag(flag); ok {
			return fail("--"+flag+" is set", nil)
		}
		return pass()
	})
}

func listHas(v, item string) bool {
	for _, s := range strings.Split(v, ",") {
		if strings.TrimSpace(s) == item {
			return true
		}
	}
	return false
}

// flagHas: the comma list flag (default def when unset) must (or must not,
// when want is false) hold item.
func flagHas(comp, flag, def, item string, want bool) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		v, ok := p.flag(flag)
		if !ok {
			v = def
		}
		if listHas(v, item) == want {
			return pass()
		}
		shown := "--" + flag + "=" + v
		if !ok {
			shown = "--" + flag + " is not set"
		}
		if want {
			return fail(fmt.Sprintf("%s: does not include %s", shown, item), nil)
		}
		return fail(fmt.Sprintf("%s: includes %s", shown, item), nil)
	})
}

func flagAtLeast(comp, flag string, n int) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		v, ok := p.flag(flag)
		if !ok {
			return fail(fmt.Sprintf("--%s is not set; want %d or more", flag, n), nil)
		}
		got, err := strconv.Atoi(v)
		if err != nil || got < n {
			return fail(fmt.Sprintf("--%s=%s; want %d or more", flag, v, n), nil)
		}
		return pass()
	})
}

// strongCiphers are the suites the CIS benchmark accepts (1.2.29, 4.2.12):
// AEAD suites, including the two RSA-key-exchange GCM suites the benchmark
// lists although they lack forward secrecy; TLS 1.3 suites are not
// configurable in Go but harmless to name.
var strongCiphers = map[string]bool{
	"TLS_RSA_WITH_AES_128_GCM_SHA256": true, "TLS_RSA_WITH_AES_256_GCM_SHA384": true,
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": true, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": true,
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": true, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": true,
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": true, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": true,
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": true, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": true,
	"TLS_AES_128_GCM_SHA256": true, "TLS_AES_256_GCM_SHA384": true, "TLS_CHACHA20_POLY1305_SHA256": true,
}

func weakCiphers(v string) []string {
	var weak []string
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" && !strongCiphers[c] {
			weak = append(weak, c)
		}
	}
	return weak
}

func cipherCheck(v string, set bool, where string) outcome {
	if !set || v == "" {
		return fail(where+" is not set: the Go defaults still offer CBC suites without forward secrecy", nil)
	}
	if w := weakCiphers(v); len(w) > 0 {
		return fail(where+" includes weak suites: "+strings.Join(w, ", "), nil)
	}
	return pass()
}

func flagCiphers(comp string) nodeCheckFn {
	return procCheck(comp, func(p *process) outcome {
		v, ok := p.flag("tls-cipher-suites")
		return cipherCheck(v, ok, "--tls-cipher-suites")
	})
}

// fileCheck runs check on each existing path; a path absent from the host
// is skipped (a worker node has no API server manifest).
func fileCheck(paths func(h *host) []string, check func(h *host, p string, fi fs.FileInfo) outcome) nodeCheckFn {
	return func(h *host) []nodeOutcome {
		ps := paths(h)
		if len(ps) == 0 {
			return []nodeOutcome{{ObjectRef{Kind: "File", Name: "(not configured)"}, skip("the component that names this file does not run on this host")}}
		}
		var out []nodeOutcome
		for _, p := range ps {
			ref := ObjectRef{Kind: "File", Name: p, Source: p}
			fi, err := h.stat(p)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				out = append(out, nodeOutcome{ref, skip(p + " does not exist on this host")})
			case err != nil:
				out = append(out, nodeOutcome{ref, skip("cannot stat " + p + ": " + err.Error())})
			default:
				out = append(out, nodeOutcome{ref, check(h, p, fi)})
			}
		}
		return out
	}
}

func fixed(ps ...string) func(*host) []string { return func(*host) []string { return ps } }

// modeAtMost fails a file whose permission bits exceed max.
func modeAtMost(max fs.FileMode) func(*host, string, fs.FileInfo) outcome {
	return func(_ *host, p string, fi fs.FileInfo) outcome {
		if m := fi.Mode().Perm(); m&^max != 0 {
			return fail(fmt.Sprintf("%s has mode %04o; want %04o or more restrictive", p, m, max), nil)
		}
		return pass()
	}
}

func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

func (h *host) name(ids map[string]int, id int) string {
	for n, v := range ids {
		if v == id {
			return n
		}
	}
	return strconv.Itoa(id)
}

// ownedBy fails a file not owned by user:group (names resolved through the
// host's etc/passwd and etc/group; root is uid/gid 0 everywhere).
func ownedBy(user, group string) func(*host, string, fs.FileInfo) outcome {
	return func(h *host, p string, fi fs.FileInfo) outcome {
		uid, gid, ok := owner(fi)
		if !ok {
			return skip("file ownership is not available on this platform")
		}
		return ownerOutcome(h, p, uid, gid, user, group)
	}
}

func ownerOutcome(h *host, p string, uid, gid int, user, group string) outcome {
	wantU, okU := h.users[user]
	wantG, okG := h.groups[group]
	if user == "root" {
		wantU, okU = 0, true
	}
	if group == "root" {
		wantG, okG = 0, true
	}
	if okU && okG && uid == wantU && gid == wantG {
		return pass()
	}
	msg := fmt.Sprintf("%s is owned by %s:%s; want %s:%s", p, h.name(h.users, uid), h.name(h.groups, gid), user, group)
	if !okU || !okG {
		msg += " (no " + user + " user or group on this host)"
	}
	return fail(msg, nil)
}

// pkiDir is the directory of the API server's client CA when it runs,
// else kubeadm's /etc/kubernetes/pki.
func pkiDir(h *host) string {
	for _, p := range h.procs[compAPIServer] {
		if v, ok := p.flag("client-ca-file"); ok && v != "" {
			return path.Dir(v)
		}
	}
	return "/etc/kubernetes/pki"
}

// walkPKI applies check to every file under the PKI directory whose name
// has one of the suffixes ("" = all), aggregating the failures into one
// verdict on the directory.
func walkPKI(suffixes []string, check func(h *host, p string, fi fs.FileInfo) outcome) nodeCheckFn {
	return func(h *host) []nodeOutcome {
		dir := pkiDir(h)
		ref := ObjectRef{Kind: "Directory", Name: dir, Source: dir}
		if _, err := h.stat(dir); err != nil {
			return []nodeOutcome{{ref, skip(dir + " does not exist on this host")}}
		}
		var bad []string
		n := 0
		walkErr := fs.WalkDir(h.root.FS(), rel(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			name := d.Name()
			if len(suffixes) > 0 && !slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
				return nil
			}
			if len(suffixes) > 0 && d.IsDir() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			n++
			if o := check(h, "/"+p, fi); o.status == StatusFail {
				bad = append(bad, o.msg)
			}
			if n > 10_000 {
				return fs.SkipAll
			}
			return nil
		})
		if walkErr != nil {
			return []nodeOutcome{{ref, skip("cannot walk " + dir + ": " + walkErr.Error())}}
		}
		if n == 0 {
			return []nodeOutcome{{ref, skip("no matching files in " + dir)}}
		}
		if len(bad) == 0 {
			return []nodeOutcome{{ref, pass()}}
		}
		sort.Strings(bad)
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("and %d more", len(bad)-10))
		}
		return []nodeOutcome{{ref, fail(strings.Join(bad, "; "), nil)}}
	}
}

// flagPath is the file named by a component's flag, or def when the
// component runs without it (nothing when it does not run and def is "").
func flagPath(comp, flag, def string) func(*host) []string {
	return func(h *host) []string {
		var out []string
		for _, p := range h.procs[comp] {
			if v, ok := p.flag(flag); ok && v != "" {
				out = append(out, v)
			}
		}
		if len(out) == 0 && def != "" {
			out = append(out, def)
		}
		return out
	}
}

func kubeletPath(flag, cfgPath, def string) func(*host) []string {
	return func(h *host) []string {
		if h.kubelet != nil {
			if v, _ := h.kubelet.setting(flag, cfgPath, "", ""); v != "" {
				return []string{v}
			}
		}
		if def == "" {
			return nil
		}
		return []string{def}
	}
}

func kubeletConfigPath(h *host) []string {
	if h.kubelet != nil {
		return []string{h.kubelet.cfgPath}
	}
	return []string{"/var/lib/kubelet/config.yaml"}
}

var kubeletServiceFiles = fixed("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf")

func isTrue(v string) bool   { return strings.EqualFold(v, "true") }
func notFalse(v string) bool { return !strings.EqualFold(v, "false") }

// nodeControls is the CIS control-plane (sections 1, 2) and worker-node
// (section 4) catalogue. IDs are stable; CIS holds the v1.9 section.
// Automated mirrors the benchmark's own Automated/Manual status; manual
// checks that can still be read from flags are evaluated anyway.
func nodeControls() []Control {
	H, M, L, C := vulndb.SeverityHigh, vulndb.SeverityMedium, vulndb.SeverityLow, vulndb.SeverityCritical
	mk := func(id, cis, title string, sev vulndb.Severity, automated bool, remediation string, fn nodeCheckFn) Control {
		return Control{ID: id, CIS: []string{cis}, Title: title, Severity: sev, Automated: automated,
			Rationale: CISVersion + " " + cis + ".", Remediation: remediation, NSA: nsaNodeOf(cis), node: fn}
	}
	manifests := "/etc/kubernetes/manifests/"
	perm := func(id, cis, what, p string, sev vulndb.Severity) Control {
		return mk(id, cis, "The "+what+" file permissions are 600 or more restrictive", sev, true,
			"chmod 600 "+p, fileCheck(fixed(p), modeAtMost(0o600)))
	}
	own := func(id, cis, what, p string) Control {
		return mk(id, cis, "The "+what+" file ownership is root:root", M, true,
			"chown root:root "+p, fileCheck(fixed(p), ownedBy("root", "root")))
	}
	api, cm, sch, etcd := compAPIServer, compController, compScheduler, compEtcd
	apiRem := func(s string) string {
		return "Edit " + manifests + "kube-apiserver.yaml on the control-plane node and " + s + "."
	}
	cs := []Control{
		perm("BW-NODE-0101", "1.1.1", "API server pod specification", manifests+"kube-apiserver.yaml", M),
		own("BW-NODE-0102", "1.1.2", "API server pod specification", manifests+"kube-apiserver.yaml"),
		perm("BW-NODE-0103", "1.1.3", "controller manager pod specification", manifests+"kube-controller-manager.yaml", M),
		own("BW-NODE-0104", "1.1.4", "controller manager pod specification", manifests+"kube-controller-manager.yaml"),
		perm("BW-NODE-0105", "1.1.5", "scheduler pod specification", manifests+"kube-scheduler.yaml", M),
		own("BW-NODE-0106", "1.1.6", "scheduler pod specification", manifests+"kube-scheduler.yaml"),
		perm("BW-NODE-0107", "1.1.7", "etcd pod specification", manifests+"etcd.yaml", M),
		own("BW-NODE-0108", "1.1.8", "etcd pod specification", manifests+"etcd.yaml"),
		mk("BW-NODE-0111", "1.1.11", "The etcd data directory permissions are 700 or more restrictive", H, true,
			"chmod 700 on etcd's --data-dir (default /var/lib/etcd).", fileCheck(flagPath(etcd, "data-dir", "/var/lib/etcd"), modeAtMost(0o700))),
		mk("BW-NODE-0112", "1.1.12", "The etcd data directory ownership is etcd:etcd", M, true,
			"chown etcd:etcd on etcd's --data-dir (default /var/lib/etcd).", fileCheck(flagPath(etcd, "data-dir", "/var/lib/etcd"), ownedBy("etcd", "etcd"))),
		perm("BW-NODE-0113", "1.1.13", "admin.conf (default administrative credential)", "/etc/kubernetes/admin.conf", H),
		own("BW-NODE-0114", "1.1.14", "admin.conf (default administrative credential)", "/etc/kubernetes/admin.conf"),
		perm("BW-NODE-0115", "1.1.15", "scheduler.conf", "/etc/kubernetes/scheduler.conf", M),
		own("BW-NODE-0116", "1.1.16", "scheduler.conf", "/etc/kubernetes/scheduler.conf"),
		perm("BW-NODE-0117", "1.1.17", "controller-manager.conf", "/etc/kubernetes/controller-manager.conf", M),
		own("BW-NODE-0118", "1.1.18", "controller-manager.conf", "/etc/kubernetes/controller-manager.conf"),
		mk("BW-NODE-0119", "1.1.19", "The Kubernetes PKI directory and files are owned by root:root", M, true,
			"chown -R root:root on the PKI directory (kubeadm: /etc/kubernetes/pki).", walkPKI(nil, ownedBy("root", "root"))),
		mk("BW-NODE-0120", "1.1.20", "The Kubernetes PKI certificate file permissions are 600 or more restrictive", M, false,
			"chmod 600 on every *.crt of the PKI directory.", walkPKI([]string{".crt", ".pem"}, modeAtMost(0o600))),
		mk("BW-NODE-0121", "1.1.21", "The Kubernetes PKI key file permissions are 600", H, false,
			"chmod 600 on every *.key of the PKI directory.", walkPKI([]string{".key"}, modeAtMost(0o600))),

		mk("BW-NODE-0201", "1.2.1", "The API server disables anonymous requests (--anonymous-auth=false)", M, false,
			apiRem("set --anonymous-auth=false"), flagEquals(api, "anonymous-auth", "true", "false")),
		mk("BW-NODE-0202", "1.2.2", "The API server does not use static token authentication (--token-auth-file)", H, true,
			apiRem("remove --token-auth-file; use certificates or OIDC"), flagNotSet(api, "token-auth-file")),
		mk("BW-NODE-0203", "1.2.3", "The DenyServiceExternalIPs admission plugin is enabled", L, false,
			apiRem("add DenyServiceExternalIPs to --enable-admission-plugins"), flagHas(api, "enable-admission-plugins", "", "DenyServiceExternalIPs", true)),
		mk("BW-NODE-0204", "1.2.4", "The API server authenticates to kubelets with a client certificate", H, true,
			apiRem("set --kubelet-client-certificate and --kubelet-client-key"), flagsSet(api, "kubelet-client-certificate", "kubelet-client-key")),
		mk("BW-NODE-0205", "1.2.5", "The API server verifies kubelet serving certificates (--kubelet-certificate-authority)", H, true,
			apiRem("set --kubelet-certificate-authority to the CA of the kubelet serving certificates"), flagsSet(api, "kubelet-certificate-authority")),
		mk("BW-NODE-0206", "1.2.6", "The API server authorization mode is not AlwaysAllow", C, true,
			apiRem("set --authorization-mode=Node,RBAC"), flagHas(api, "authorization-mode", "AlwaysAllow", "AlwaysAllow", false)),
		mk("BW-NODE-0207", "1.2.7", "The API server authorization mode includes Node", H, true,
			apiRem("set --authorization-mode=Node,RBAC"), flagHas(api, "authorization-mode", "AlwaysAllow", "Node", true)),
		mk("BW-NODE-0208", "1.2.8", "The API server authorization mode includes RBAC", H, true,
			apiRem("set --authorization-mode=Node,RBAC"), flagHas(api, "authorization-mode", "AlwaysAllow", "RBAC", true)),
		mk("BW-NODE-0209", "1.2.9", "The EventRateLimit admission plugin is enabled", L, false,
			apiRem("add EventRateLimit to --enable-admission-plugins with an --admission-control-config-file"), flagHas(api, "enable-admission-plugins", "", "EventRateLimit", true)),
		mk("BW-NODE-0210", "1.2.10", "The AlwaysAdmit admission plugin is not enabled", H, true,
			apiRem("remove AlwaysAdmit from --enable-admission-plugins"), flagHas(api, "enable-admission-plugins", "", "AlwaysAdmit", false)),
		mk("BW-NODE-0211", "1.2.11", "The AlwaysPullImages admission plugin is enabled", L, false,
			apiRem("add AlwaysPullImages to --enable-admission-plugins"), flagHas(api, "enable-admission-plugins", "", "AlwaysPullImages", true)),
		mk("BW-NODE-0212", "1.2.12", "The ServiceAccount admission plugin is not disabled", M, true,
			apiRem("remove ServiceAccount from --disable-admission-plugins"), flagHas(api, "disable-admission-plugins", "", "ServiceAccount", false)),
		mk("BW-NODE-0213", "1.2.13", "The NamespaceLifecycle admission plugin is not disabled", M, true,
			apiRem("remove NamespaceLifecycle from --disable-admission-plugins"), flagHas(api, "disable-admission-plugins", "", "NamespaceLifecycle", false)),
		mk("BW-NODE-0214", "1.2.14", "The NodeRestriction admission plugin is enabled", H, true,
			apiRem("add NodeRestriction to --enable-admission-plugins"), flagHas(api, "enable-admission-plugins", "", "NodeRestriction", true)),
		mk("BW-NODE-0215", "1.2.15", "API server profiling is disabled (--profiling=false)", L, true,
			apiRem("set --profiling=false"), flagEquals(api, "profiling", "true", "false")),
		mk("BW-NODE-0216", "1.2.16", "API server audit logging is enabled (--audit-log-path)", H, true,
			apiRem("set --audit-log-path and an --audit-policy-file"), flagsSet(api, "audit-log-path")),
		mk("BW-NODE-0217", "1.2.17", "Audit logs are kept 30 days or more (--audit-log-maxage)", L, true,
			apiRem("set --audit-log-maxage=30"), flagAtLeast(api, "audit-log-maxage", 30)),
		mk("BW-NODE-0218", "1.2.18", "10 or more audit log files are kept (--audit-log-maxbackup)", L, true,
			apiRem("set --audit-log-maxbackup=10"), flagAtLeast(api, "audit-log-maxbackup", 10)),
		mk("BW-NODE-0219", "1.2.19", "Audit log files rotate at 100 MB or more (--audit-log-maxsize)", L, true,
			apiRem("set --audit-log-maxsize=100"), flagAtLeast(api, "audit-log-maxsize", 100)),
		mk("BW-NODE-0221", "1.2.21", "The API server checks service account tokens against etcd (--service-account-lookup)", M, true,
			apiRem("remove --service-account-lookup=false"), flagEquals(api, "service-account-lookup", "true", "true")),
		mk("BW-NODE-0222", "1.2.22", "The API server has a service account key file", M, true,
			apiRem("set --service-account-key-file"), flagsSet(api, "service-account-key-file")),
		mk("BW-NODE-0223", "1.2.23", "The API server authenticates to etcd with a client certificate", H, true,
			apiRem("set --etcd-certfile and --etcd-keyfile"), flagsSet(api, "etcd-certfile", "etcd-keyfile")),
		mk("BW-NODE-0224", "1.2.24", "The API server serves TLS with its own certificate", H, true,
			apiRem("set --tls-cert-file and --tls-private-key-file"), flagsSet(api, "tls-cert-file", "tls-private-key-file")),
		mk("BW-NODE-0225", "1.2.25", "The API server verifies client certificates (--client-ca-file)", H, true,
			apiRem("set --client-ca-file"), flagsSet(api, "client-ca-file")),
		mk("BW-NODE-0226", "1.2.26", "The API server verifies etcd's certificate (--etcd-cafile)", H, true,
			apiRem("set --etcd-cafile"), flagsSet(api, "etcd-cafile")),
		mk("BW-NODE-0227", "1.2.27", "Secrets are encrypted at rest (--encryption-provider-config)", H, false,
			apiRem("set --encryption-provider-config to an EncryptionConfiguration with aescbc, secretbox or kms"), flagsSet(api, "encryption-provider-config")),
		mk("BW-NODE-0229", "1.2.29", "The API server offers only strong TLS cipher suites", M, false,
			apiRem("set --tls-cipher-suites to ECDHE AEAD suites only (e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)"), flagCiphers(api)),

		mk("BW-NODE-0302", "1.3.2", "Controller manager profiling is disabled", L, true,
			"Set --profiling=false in kube-controller-manager.yaml.", flagEquals(cm, "profiling", "true", "false")),
		mk("BW-NODE-0303", "1.3.3", "Controllers use individual service account credentials", M, true,
			"Set --use-service-account-credentials=true in kube-controller-manager.yaml.", flagEquals(cm, "use-service-account-credentials", "false", "true")),
		mk("BW-NODE-0304", "1.3.4", "The controller manager signs service account tokens (--service-account-private-key-file)", M, true,
			"Set --service-account-private-key-file in kube-controller-manager.yaml.", flagsSet(cm, "service-account-private-key-file")),
		mk("BW-NODE-0305", "1.3.5", "The controller manager gives pods the cluster CA (--root-ca-file)", M, true,
			"Set --root-ca-file in kube-controller-manager.yaml.", flagsSet(cm, "root-ca-file")),
		mk("BW-NODE-0306", "1.3.6", "Kubelet server certificate rotation is not disabled", M, true,
			"Remove RotateKubeletServerCertificate=false from --feature-gates in kube-controller-manager.yaml.", flagHas(cm, "feature-gates", "", "RotateKubeletServerCertificate=false", false)),
		mk("BW-NODE-0307", "1.3.7", "The controller manager binds to 127.0.0.1", M, true,
			"Set --bind-address=127.0.0.1 in kube-controller-manager.yaml.", flagEquals(cm, "bind-address", "0.0.0.0", "127.0.0.1")),
		mk("BW-NODE-0401", "1.4.1", "Scheduler profiling is disabled", L, true,
			"Set --profiling=false in kube-scheduler.yaml.", flagEquals(sch, "profiling", "true", "false")),
		mk("BW-NODE-0402", "1.4.2", "The scheduler binds to 127.0.0.1", M, true,
			"Set --bind-address=127.0.0.1 in kube-scheduler.yaml.", flagEquals(sch, "bind-address", "0.0.0.0", "127.0.0.1")),

		mk("BW-NODE-0501", "2.1", "etcd serves TLS (--cert-file, --key-file)", C, true,
			"Set --cert-file and --key-file in etcd.yaml.", flagsSet(etcd, "cert-file", "key-file")),
		mk("BW-NODE-0502", "2.2", "etcd requires client certificates (--client-cert-auth=true)", C, true,
			"Set --client-cert-auth=true in etcd.yaml.", flagEquals(etcd, "client-cert-auth", "false", "true")),
		mk("BW-NODE-0503", "2.3", "etcd does not use self-signed certificates (--auto-tls)", H, true,
			"Remove --auto-tls or set it to false in etcd.yaml.", flagNotEquals(etcd, "auto-tls", "false", "true")),
		mk("BW-NODE-0504", "2.4", "etcd peers use TLS (--peer-cert-file, --peer-key-file)", H, true,
			"Set --peer-cert-file and --peer-key-file in etcd.yaml (clustered etcd only).", flagsSet(etcd, "peer-cert-file", "peer-key-file")),
		mk("BW-NODE-0505", "2.5", "etcd peers require client certificates (--peer-client-cert-auth=true)", H, true,
			"Set --peer-client-cert-auth=true in etcd.yaml (clustered etcd only).", flagEquals(etcd, "peer-client-cert-auth", "false", "true")),
		mk("BW-NODE-0506", "2.6", "etcd peers do not use self-signed certificates (--peer-auto-tls)", H, true,
			"Remove --peer-auto-tls or set it to false in etcd.yaml.", flagNotEquals(etcd, "peer-auto-tls", "false", "true")),

		mk("BW-NODE-0601", "4.1.1", "The kubelet service file permissions are 600 or more restrictive", M, true,
			"chmod 600 on the kubelet systemd drop-in (kubeadm: 10-kubeadm.conf).", fileCheck(kubeletServiceFiles, modeAtMost(0o600))),
		mk("BW-NODE-0602", "4.1.2", "The kubelet service file ownership is root:root", M, true,
			"chown root:root on the kubelet systemd drop-in.", fileCheck(kubeletServiceFiles, ownedBy("root", "root"))),
		mk("BW-NODE-0603", "4.1.3", "The kube-proxy kubeconfig permissions are 600 or more restrictive", M, false,
			"chmod 600 on kube-proxy's --kubeconfig file.", fileCheck(flagPath(compProxy, "kubeconfig", ""), modeAtMost(0o600))),
		mk("BW-NODE-0604", "4.1.4", "The kube-proxy kubeconfig ownership is root:root", M, false,
			"chown root:root on kube-proxy's --kubeconfig file.", fileCheck(flagPath(compProxy, "kubeconfig", ""), ownedBy("root", "root"))),
		mk("BW-NODE-0605", "4.1.5", "The kubelet kubeconfig (kubelet.conf) permissions are 600 or more restrictive", H, true,
			"chmod 600 on the kubelet's --kubeconfig (kubeadm: /etc/kubernetes/kubelet.conf).", fileCheck(kubeletPath("kubeconfig", "-", "/etc/kubernetes/kubelet.conf"), modeAtMost(0o600))),
		mk("BW-NODE-0606", "4.1.6", "The kubelet kubeconfig (kubelet.conf) ownership is root:root", M, true,
			"chown root:root on the kubelet's --kubeconfig.", fileCheck(kubeletPath("kubeconfig", "-", "/etc/kubernetes/kubelet.conf"), ownedBy("root", "root"))),
		mk("BW-NODE-0607", "4.1.7", "The kubelet client CA file permissions are 600 or more restrictive", M, false,
			"chmod 600 on the kubelet's client CA file.", fileCheck(kubeletPath("client-ca-file", "authentication.x509.clientCAFile", ""), modeAtMost(0o600))),
		mk("BW-NODE-0608", "4.1.8", "The kubelet client CA file ownership is root:root", M, false,
			"chown root:root on the kubelet's client CA file.", fileCheck(kubeletPath("client-ca-file", "authentication.x509.clientCAFile", ""), ownedBy("root", "root"))),
		mk("BW-NODE-0609", "4.1.9", "The kubelet config file permissions are 600 or more restrictive", M, true,
			"chmod 600 on the kubelet --config file (kubeadm: /var/lib/kubelet/config.yaml).", fileCheck(kubeletConfigPath, modeAtMost(0o600))),
		mk("BW-NODE-0610", "4.1.10", "The kubelet config file ownership is root:root", M, true,
			"chown root:root on the kubelet --config file.", fileCheck(kubeletConfigPath, ownedBy("root", "root"))),

		mk("BW-NODE-0701", "4.2.1", "The kubelet refuses anonymous requests", C, true,
			"Set authentication.anonymous.enabled: false in the kubelet config (or --anonymous-auth=false).",
			kubeletIs("anonymous-auth", "authentication.anonymous.enabled", "false", "true", `"false"`, func(v string) bool { return strings.EqualFold(v, "false") })),
		mk("BW-NODE-0702", "4.2.2", "The kubelet authorization mode is not AlwaysAllow", C, true,
			"Set authorization.mode: Webhook in the kubelet config (or --authorization-mode=Webhook).",
			kubeletIs("authorization-mode", "authorization.mode", "Webhook", "AlwaysAllow", "not AlwaysAllow", func(v string) bool { return !strings.EqualFold(v, "AlwaysAllow") })),
		mk("BW-NODE-0703", "4.2.3", "The kubelet verifies client certificates (client CA file)", H, true,
			"Set authentication.x509.clientCAFile in the kubelet config (or --client-ca-file).",
			kubeletIs("client-ca-file", "authentication.x509.clientCAFile", "", "", "a CA file", func(v string) bool { return v != "" })),
		mk("BW-NODE-0704", "4.2.4", "The kubelet read-only port is disabled", H, false,
			"Set readOnlyPort: 0 in the kubelet config (or --read-only-port=0).",
			kubeletIs("read-only-port", "readOnlyPort", "0", "10255", "0", func(v string) bool { return v == "0" })),
		mk("BW-NODE-0705", "4.2.5", "The kubelet streaming connection idle timeout is not 0", L, false,
			"Set streamingConnectionIdleTimeout (e.g. 5m) in the kubelet config.",
			kubeletIs("streaming-connection-idle-timeout", "streamingConnectionIdleTimeout", "4h0m0s", "4h0m0s", "a non-zero duration", nonZeroDuration)),
		mk("BW-NODE-0706", "4.2.6", "The kubelet manages iptables utility chains", L, true,
			"Set makeIPTablesUtilChains: true in the kubelet config.",
			kubeletIs("make-iptables-util-chains", "makeIPTablesUtilChains", "true", "true", `"true"`, isTrue)),
		mk("BW-NODE-0710", "4.2.10", "Kubelet client certificate rotation is not disabled", M, true,
			"Remove rotateCertificates: false from the kubelet config (or --rotate-certificates=false).",
			kubeletIs("rotate-certificates", "rotateCertificates", "", "", "not false", notFalse)),
		mk("BW-NODE-0711", "4.2.11", "Kubelet server certificate rotation is not disabled", M, false,
			"Remove RotateKubeletServerCertificate: false from the kubelet featureGates.",
			kubeletIs("feature-gates", "featureGates.RotateKubeletServerCertificate", "", "", "RotateKubeletServerCertificate not false",
				func(v string) bool { return notFalse(v) && !listHas(v, "RotateKubeletServerCertificate=false") })),
		mk("BW-NODE-0712", "4.2.12", "The kubelet offers only strong TLS cipher suites", M, false,
			"Set tlsCipherSuites in the kubelet config to ECDHE AEAD suites only.",
			kubeletCheck(func(k *kubeletView) outcome {
				v, from := k.setting("tls-cipher-suites", "tlsCipherSuites", "", "")
				v = strings.Trim(strings.ReplaceAll(v, " ", ","), "[]")
				return cipherCheck(v, v != "", "tls cipher suites ("+from+")")
			})),
		mk("BW-NODE-0713", "4.2.13", "The kubelet limits the number of PIDs per pod", L, false,
			"Set podPidsLimit in the kubelet config (e.g. 4096).",
			kubeletIs("pod-max-pids", "podPidsLimit", "-1", "-1", "a positive limit", func(v string) bool {
				n, err := strconv.Atoi(v)
				return err == nil && n > 0
			})),
		mk("BW-NODE-0731", "4.3.1", "The kube-proxy metrics service is bound to localhost", M, true,
			"Set --metrics-bind-address=127.0.0.1:10249 (or metricsBindAddress in its config), or remove it for the default.",
			procCheck(compProxy, func(p *process) outcome {
				v, ok := p.flag("metrics-bind-address")
				if !ok || strings.HasPrefix(v, "127.0.0.1:") || v == "127.0.0.1" || strings.HasPrefix(v, "[::1]:") {
					return pass()
				}
				return fail("--metrics-bind-address="+v+" exposes the metrics beyond localhost", nil)
			})),
	}
	for i := range cs {
		cs[i].scope = scopeNode
	}
	return cs
}

func nonZeroDuration(v string) bool {
	if v == "0" || v == "" {
		return false
	}
	d, err := time.ParseDuration(v)
	return err != nil || d != 0 // an unparsable value is the kubelet's problem, not zero
}

func nsaNodeOf(cis string) string {
	switch {
	case cis == "1.2.16" || cis == "1.2.17" || cis == "1.2.18" || cis == "1.2.19":
		return nsaLogging
	case strings.HasPrefix(cis, "4."):
		return "Network separation and hardening: Worker node partitioning"
	}
	return "Network separation and hardening: Control plane hardening"
}
