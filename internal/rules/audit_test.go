package rules

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// realisticAudit is a set of records shaped as kube-apiserver writes them
// (field order of the API types, init containers before containers,
// escapes, nulls, unknown keys the rules never read).
func realisticAudit() []string {
	recs := []string{
		podCreate(`"securityContext":{"privileged":true,"capabilities":{"add":["NET_ADMIN","SYS_PTRACE"]}}`, `{"name":"s","hostPath":{"path":"/var/run/docker.sock","type":""}}`),
		simpleAudit("create", "pods", "exec", "default", "web-0", "alice"),
		bindingCreate("cluster-admin"),
		roleCreate(`"*"`),
		serviceCreate("NodePort", 5432),
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"0b6c7a6e-1f7e-4b7c-9d55-2c2a5c2b7f10",
"stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/prod/deployments?fieldManager=kubectl-client-side-apply",
"verb":"create","user":{"username":"system:serviceaccount:ci:deployer","uid":"9f0","groups":["system:serviceaccounts","system:serviceaccounts:ci","system:authenticated"],
"extra":{"authentication.kubernetes.io/pod-name":["runner-7"]}},"impersonatedUser":null,"sourceIPs":["10.0.0.7","192.0.2.1"],
"userAgent":"kubectl/v1.30.2 (linux/amd64) kubernetes/3968350","objectRef":{"resource":"deployments","namespace":"prod","name":"web","apiGroup":"apps","apiVersion":"v1"},
"responseStatus":{"metadata":{},"code":201},
"requestObject":{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","labels":{"app":"web"},"annotations":{"note":"quote \" and \\u00e9 \u00e9 tab\t"}},
"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"volumes":[{"name":"cfg","configMap":{"name":"web"}},{"name":"root","hostPath":{"path":"/"}}],
"initContainers":[{"name":"init","image":"busybox:1.36","command":["sh","-c","true"]}],
"containers":[{"name":"web","image":"nginx@sha256:0123","ports":[{"containerPort":80,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m","memory":1.5e9}},
"securityContext":{"privileged":false,"capabilities":{"drop":["ALL"],"add":null}}}],
"hostNetwork":true,"hostPID":false,"hostIPC":null,"dnsPolicy":"ClusterFirst"}},"strategy":{}},"status":{}},
"responseObject":{"kind":"Deployment","status":{"conditions":[[[]],{},-0.5e-3,true,false,null]}},
"requestReceivedTimestamp":"2026-11-27T10:00:00.000001Z","stageTimestamp":"2026-11-27T10:00:00.010203Z",
"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"ci\""}}`,
		`{"kind":"Event","verb":"create","objectRef":{"resource":"cronjobs","namespace":"x","name":"c"},"requestObject":{"kind":"CronJob",
"spec":{"schedule":"* * * * *","jobTemplate":{"metadata":{},"spec":{"template":{"spec":{"containers":[{"image":"alpine","securityContext":{"privileged":true}}],"ephemeralContainers":[{"image":"dbg"}]}}}}}}}`,
		`{"verb":"get","user":{"username":"system:anonymous","groups":["system:unauthenticated"]},"requestURI":"/api/v1/namespaces/default/secrets","responseStatus":{"code":403},"objectRef":null,"requestObject":null}`,
		`{"kind":"Event","verb":"create","objectRef":{"resource":"rolebindings","namespace":"d","name":"b"},"requestObject":{"kind":"RoleBinding",
"subjects":[{"kind":"Group","name":"system:unauthenticated","apiGroup":"rbac.authorization.k8s.io"},{"kind":"User"}],"roleRef":{"kind":"ClusterRole","name":"edit"}}}`,
	}
	for i, r := range recs {
		recs[i] = strings.ReplaceAll(r, "\n", "")
	}
	return recs
}

func sortedEvent(e AuditEvent) AuditEvent {
	e.AuditID, e.StageTimestamp = "", ""
	for _, p := range []*[]string{&e.Groups, &e.SourceIPs, &e.Images, &e.HostPaths, &e.AddCapabilities, &e.BindingSubjects,
		&e.RuleVerbs, &e.RuleResources, &e.ServicePorts, &e.Privileged} {
		if len(*p) == 0 {
			*p = nil
		}
		slices.Sort(*p)
	}
	return e
}

// The scanner decodes every realistic record exactly as the reflection-based
// decoder it replaced (order within lists aside: the scanner keeps document
// order, the old decoder put containers before init containers).
func TestAuditScannerMatchesReference(t *testing.T) {
	var reused AuditEvent
	for i, rec := range realisticAudit() {
		var want, got AuditEvent
		if err := decodeAuditEventRef([]byte(rec), &want); err != nil {
			t.Fatalf("record %d: reference: %v", i, err)
		}
		if err := DecodeAuditEvent([]byte(rec), &got); err != nil {
			t.Fatalf("record %d: scanner: %v", i, err)
		}
		if d := cmp.Diff(sortedEvent(want), sortedEvent(got)); d != "" {
			t.Errorf("record %d (-reference +scanner):\n%s", i, d)
		}
		// Reusing an event that held another record changes nothing.
		if err := DecodeAuditEvent([]byte(rec), &reused); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sortedEvent(*got.Clone()), sortedEvent(*reused.Clone())); d != "" {
			t.Errorf("record %d reused (-fresh +reused):\n%s", i, d)
		}
	}
}

func TestAuditScannerFields(t *testing.T) {
	var ev AuditEvent
	if err := DecodeAuditEventString(realisticAudit()[5], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.AuditID != "0b6c7a6e-1f7e-4b7c-9d55-2c2a5c2b7f10" || ev.StageTimestamp != "2026-11-27T10:00:00.010203Z" {
		t.Errorf("id/timestamp: %q %q", ev.AuditID, ev.StageTimestamp)
	}
	if !slices.Equal(ev.Images, []string{"busybox:1.36", "nginx@sha256:0123"}) || !slices.Equal(ev.HostPaths, []string{"/"}) || !ev.HostNetwork {
		t.Errorf("pod template: %+v", ev)
	}
	if ev.Code != 201 || !ev.HasCode || ev.AuthDecision != "allow" {
		t.Errorf("status: %d %v %q", ev.Code, ev.HasCode, ev.AuthDecision)
	}
}

func TestAuditScannerHostile(t *testing.T) {
	deep := `{"verb":"get","requestObject":` + strings.Repeat("[", maxAuditDepth+1) + strings.Repeat("]", maxAuditDepth+1) + `}`
	for name, in := range map[string]string{
		"empty":            ``,
		"not an object":    `[]`,
		"truncated":        `{"verb":"get","user":{"username":"a"`,
		"trailing comma":   `{"verb":"get",}`,
		"array comma":      `{"sourceIPs":["a",]}`,
		"missing colon":    `{"verb" "get"}`,
		"bad escape":       `{"verb":"g\x"}`,
		"control char":     "{\"verb\":\"g\x01\"}",
		"unterminated":     `{"verb":"get`,
		"wrong type":       `{"verb":5}`,
		"float code":       `{"responseStatus":{"code":200.5}}`,
		"huge code":        `{"responseStatus":{"code":99999999999999999999}}`,
		"bad literal":      `{"x":nul}`,
		"bad number":       `{"x":-}`,
		"trailing garbage": `{"verb":"get"} x`,
		"too deep":         deep,
		"list kind":        `{"kind":"PodList","items":[]}`,
	} {
		var ev AuditEvent
		err := DecodeAuditEventString(in, &ev)
		if name == "list kind" {
			err = EachAuditEvent(in, func(string, *AuditEvent) error { return nil })
		}
		if !errors.Is(err, ErrAuditSyntax) {
			t.Errorf("%s: err %v, want ErrAuditSyntax", name, err)
		}
	}
	big := `{"verb":"` + strings.Repeat("a", MaxAuditEventSize) + `"}`
	var ev AuditEvent
	if err := DecodeAuditEvent([]byte(big), &ev); !errors.Is(err, ErrAuditTooLarge) {
		t.Errorf("oversized: %v", err)
	}
}

func TestEachAuditEvent(t *testing.T) {
	recs := realisticAudit()
	body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + strings.Join(recs, ",") + `]}`
	var raws []string
	err := EachAuditEvent(body, func(raw string, ev *AuditEvent) error {
		raws = append(raws, raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(recs, raws); d != "" {
		t.Errorf("raw items (-want +got):\n%s", d)
	}
	list, err := DecodeAuditEventList([]byte(body))
	if err != nil || len(list) != len(recs) || list[2].BindingRole != "cluster-admin" || list[0].Images[0] != "nginx:1.25" {
		t.Errorf("DecodeAuditEventList: %d events, %v", len(list), err)
	}
}

// FuzzAuditEvent: any input decodes or fails cleanly (no panic), and
// decoding into a reused event gives what a fresh decode gives.
func FuzzAuditEvent(f *testing.F) {
	for _, r := range realisticAudit() {
		f.Add(r)
	}
	f.Add(`{"items":[{"verb":"get"}]}`)
	f.Add(`{"requestObject":{"spec":{"template":{"spec":null}}}}`)
	var reused AuditEvent
	if err := DecodeAuditEventString(realisticAudit()[5], &reused); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var fresh AuditEvent
		err1 := DecodeAuditEventString(s, &fresh)
		err2 := DecodeAuditEventString(s, &reused)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("fresh %v, reused %v", err1, err2)
		}
		if err1 == nil {
			if d := cmp.Diff(sortedEvent(*fresh.Clone()), sortedEvent(*reused.Clone())); d != "" {
				t.Fatalf("reused differs:\n%s", d)
			}
		} else if !errors.Is(err1, ErrAuditSyntax) && !errors.Is(err1, ErrAuditTooLarge) {
			t.Fatalf("error of another kind: %v", err1)
		}
		_ = EachAuditEvent(s, func(string, *AuditEvent) error { return nil })
	})
}
