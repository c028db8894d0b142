package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func validAlert() Alert {
	return Alert{
		ID: "7f1c9f7e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", Time: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC),
		Source: SourceSensor, Rule: "Terminal shell in container", RuleVersion: "1.2.0", Severity: SeverityHigh,
		Title: "A shell was spawned in a container (user=root shell=bash)", MitreTactic: "TA0002", MitreTechnique: "T1059.004",
		Cluster: "prod", Namespace: "shop", Pod: "web-7d9c", Container: "web", ContainerID: "abc123", Image: "nginx:1.25",
		ImageDigest: "sha256:" + strings.Repeat("a", 64), Node: "node-1", Workload: "Deployment/web",
		Evidence: json.RawMessage(`{"proc.name":"bash","proc.pid":42}`),
	}
}

func TestAlertJSONRoundTrip(t *testing.T) {
	a := validAlert()
	b, err := json.Marshal(Batch{Alerts: []Alert{a}})
	if err != nil {
		t.Fatal(err)
	}
	// The wire names are the contract's.
	for _, k := range []string{`"id":`, `"time":"2026-11-27T10:00:00.123456789Z"`, `"source":"sensor"`, `"rule_version":`,
		`"severity":"high"`, `"mitre_tactic":"TA0002"`, `"mitre_technique":"T1059.004"`, `"container_id":`, `"image_digest":`,
		`"workload":"Deployment/web"`, `"evidence":{`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("encoded alert lacks %s: %s", k, b)
		}
	}
	got, err := DecodeBatch(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Alert{a}, got.Alerts); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Alert)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*Alert) {}, ""},
		{"null evidence", func(a *Alert) { a.Evidence = json.RawMessage("null") }, ""},
		{"no evidence", func(a *Alert) { a.Evidence = nil }, ""},
		{"no id", func(a *Alert) { a.ID = "" }, "id is required"},
		{"id with space", func(a *Alert) { a.ID = "a b" }, "only letters"},
		{"id too long", func(a *Alert) { a.ID = strings.Repeat("a", MaxIDLen+1) }, "longer than"},
		{"no time", func(a *Alert) { a.Time = time.Time{} }, "time is required"},
		{"year 1", func(a *Alert) { a.Time = time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC) }, "out of range"},
		{"bad source", func(a *Alert) { a.Source = "scan" }, "source"},
		{"no rule", func(a *Alert) { a.Rule = "" }, "rule is required"},
		{"bad severity", func(a *Alert) { a.Severity = 9 }, "severity 9"},
		{"control char in title", func(a *Alert) { a.Title = "x\x1b[31m" }, "control character"},
		{"newline in namespace", func(a *Alert) { a.Namespace = "a\nb" }, "namespace contains"},
		{"not utf8", func(a *Alert) { a.Pod = "\xff" }, "not UTF-8"},
		{"long title", func(a *Alert) { a.Title = strings.Repeat("x", MaxTitleLen+1) }, "title longer"},
		{"bad tactic", func(a *Alert) { a.MitreTactic = "T0002" }, "mitre_tactic"},
		{"bad technique", func(a *Alert) { a.MitreTechnique = "T10" }, "mitre_technique"},
		{"evidence array", func(a *Alert) { a.Evidence = json.RawMessage(`[1]`) }, "not a JSON object"},
		{"evidence broken", func(a *Alert) { a.Evidence = json.RawMessage(`{"a":`) }, "not a JSON object"},
		{"evidence huge", func(a *Alert) {
			a.Evidence = json.RawMessage(`{"x":"` + strings.Repeat("a", MaxEvidenceBytes) + `"}`)
		}, "evidence is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := validAlert()
			tc.mutate(&a)
			err := a.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	for i, w := range []string{"info", "low", "medium", "high", "critical"} {
		for _, in := range []string{w, strings.ToUpper(w), " " + w + " "} {
			got, err := ParseSeverity(in)
			if err != nil || got != Severity(i) {
				t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, Severity(i))
			}
		}
		if Severity(i).String() != w {
			t.Errorf("Severity(%d).String() = %q", i, Severity(i).String())
		}
	}
	for _, bad := range []string{"", "moderate", "warning", "5", "unknown"} {
		if _, err := ParseSeverity(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSeverity(%q) accepted", bad)
		}
	}
	if _, err := Severity(7).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid severity succeeded")
	}
	for p, want := range map[string]Severity{"EMERGENCY": SeverityCritical, "Critical": SeverityCritical, "ERROR": SeverityHigh,
		"WARNING": SeverityMedium, "NOTICE": SeverityLow, "INFORMATIONAL": SeverityInfo, "debug": SeverityInfo} {
		if got, err := SeverityFromPriority(p); err != nil || got != want {
			t.Errorf("SeverityFromPriority(%q) = %v, %v; want %v", p, got, err, want)
		}
	}
	if _, err := SeverityFromPriority("loud"); err == nil {
		t.Error("SeverityFromPriority accepted an unknown priority")
	}
}

func TestMITREFromTags(t *testing.T) {
	for _, tc := range []struct {
		tags              []string
		tactic, technique string
	}{
		{[]string{"container", "shell", "mitre_execution", "T1059.004"}, "TA0002", "T1059.004"},
		{[]string{"TA0004", "t1611", "mitre_execution"}, "TA0004", "T1611"},
		{[]string{"k8s", "mitre_privilege_escalation"}, "TA0004", ""},
		{[]string{"mitre_unknown_tactic", "T1"}, "", ""},
		{nil, "", ""},
	} {
		tac, tech := MITREFromTags(tc.tags)
		if tac != tc.tactic || tech != tc.technique {
			t.Errorf("MITREFromTags(%q) = %q, %q; want %q, %q", tc.tags, tac, tech, tc.tactic, tc.technique)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a := validAlert()
	base := Fingerprint(&a)
	if len(base) != 32 {
		t.Fatalf("fingerprint %q: want 32 hex digits", base)
	}
	// The documented construction, spelled out independently: stored
	// fingerprints must not change between versions.
	var in string
	for _, p := range []string{"sensor", a.Rule, a.Cluster, a.Namespace, a.Workload, a.Container} {
		in += fmt.Sprintf("%d:%s;", len(p), p)
	}
	if sum := sha256.Sum256([]byte(in)); base != hex.EncodeToString(sum[:16]) {
		t.Errorf("fingerprint %s is not sha256(%q)[:16]", base, in)
	}
	// What does not change the fingerprint: a repeat of the same detection.
	same := a
	same.ID, same.Time, same.Evidence, same.RuleVersion, same.Title, same.Pod = "other", a.Time.Add(time.Hour),
		json.RawMessage(`{"proc.pid":43}`), "1.3.0", "another line", "web-other-replica"
	if got := Fingerprint(&same); got != base {
		t.Errorf("repeat on another replica changed the fingerprint: %s != %s", got, base)
	}
	// What does.
	for name, m := range map[string]func(*Alert){
		"rule": func(a *Alert) { a.Rule += "x" }, "cluster": func(a *Alert) { a.Cluster = "dev" },
		"namespace": func(a *Alert) { a.Namespace = "x" }, "workload": func(a *Alert) { a.Workload = "Deployment/api" },
		"container": func(a *Alert) { a.Container = "sidecar" }, "source": func(a *Alert) { a.Source = SourceAudit },
		"boundary": func(a *Alert) { a.Namespace, a.Cluster = a.Cluster+a.Namespace[:1], a.Namespace[1:] },
	} {
		b := a
		m(&b)
		if Fingerprint(&b) == base {
			t.Errorf("changing %s kept the fingerprint", name)
		}
	}
	if Fingerprint(&a, "/tmp/x") == base || Fingerprint(&a, "/tmp/x") == Fingerprint(&a, "/tmp/y") {
		t.Error("key evidence does not separate fingerprints")
	}
	noWorkload := a
	noWorkload.Workload = ""
	other := noWorkload
	other.Pod = "bare-pod-2"
	if Fingerprint(&noWorkload) == Fingerprint(&other) {
		t.Error("bare pods (no workload) share a fingerprint")
	}
	if a.EffectiveFingerprint() != base {
		t.Error("EffectiveFingerprint without a sender fingerprint is not the default")
	}
	a.Fingerprint = "mine"
	if a.EffectiveFingerprint() != "mine" {
		t.Error("EffectiveFingerprint ignores the sender's fingerprint")
	}
}

func TestDecodeBatchHostile(t *testing.T) {
	good, _ := json.Marshal(validAlert())
	many := make([]string, MaxBatch+1)
	for i := range many {
		a := validAlert()
		a.ID = fmt.Sprintf("id-%d", i)
		b, _ := json.Marshal(a)
		many[i] = string(b)
	}
	for _, tc := range []struct {
		name, body string
		tooLarge   bool
		want       string
	}{
		{"empty", "", false, "empty body"},
		{"not json", "hello", false, "malformed JSON"},
		{"array", `[` + string(good) + `]`, false, ""},
		{"no alerts", `{"alerts":[]}`, false, "empty or missing"},
		{"unknown field", `{"alerts":[` + string(good) + `],"x":1}`, false, "unknown field"},
		{"unknown alert field", `{"alerts":[` + strings.Replace(string(good), `"id"`, `"idx":1,"id"`, 1) + `]}`, false, "unknown field"},
		{"trailing", `{"alerts":[` + string(good) + `]} {}`, false, "trailing data"},
		{"bad severity", `{"alerts":[` + strings.Replace(string(good), `"high"`, `"urgent"`, 1) + `]}`, false, "severity"},
		{"numeric severity", `{"alerts":[` + strings.Replace(string(good), `"high"`, `3`, 1) + `]}`, false, "severity"},
		{"bad time", `{"alerts":[` + strings.Replace(string(good), `2026-11-27T10`, `yesterday`, 1) + `]}`, false, "time"},
		{"evidence string", `{"alerts":[` + strings.Replace(string(good), `"evidence":{"proc.name":"bash","proc.pid":42}`, `"evidence":"x"`, 1) + `]}`, false, "evidence"},
		{"duplicate id", `{"alerts":[` + string(good) + `,` + string(good) + `]}`, false, "twice"},
		{"too many", `{"alerts":[` + strings.Join(many, ",") + `]}`, true, "limit 1000"},
		{"too big", `{"alerts":[{"id":"` + strings.Repeat("a", MaxBodyBytes) + `"}]}`, true, "limit"},
		{"deep nesting", `{"alerts":[` + strings.Replace(string(good), `"evidence":{`, `"evidence":{"x":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`,`, 1) + `]}`, false, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(strings.NewReader(tc.body))
			if tc.want == "" {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeBatch = %v, want error containing %q", err, tc.want)
			}
			if tc.tooLarge != errors.Is(err, ErrTooLarge) || !tc.tooLarge && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error class of %v: want tooLarge=%v", err, tc.tooLarge)
			}
		})
	}
}

func TestActionResultValidate(t *testing.T) {
	for _, tc := range []struct {
		r  ActionResult
		ok bool
	}{
		{ActionResult{State: ActionDone}, true},
		{ActionResult{State: ActionFailed, Message: "pods \"x\" not found\n"}, true},
		{ActionResult{State: ActionPending}, false},
		{ActionResult{State: "ok"}, false},
		{ActionResult{State: ActionDone, Message: "\xff"}, false},
	} {
		if err := tc.r.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v", tc.r, err)
		}
	}
	for _, k := range ActionKinds {
		if !k.Valid() {
			t.Errorf("%s not valid", k)
		}
	}
	if ActionKind("reboot").Valid() || !ActionDeletePod.NeedsPod() || ActionCordonNode.NeedsPod() {
		t.Error("ActionKind predicates wrong")
	}
}

// TestImports keeps senders free of central: this package links into the
// sensor binary.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") || imp == "net/http" || imp == "database/sql" {
			t.Errorf("package alerts imports %s (standard library only)", imp)
		}
	}
}

func FuzzAlertIngest(f *testing.F) {
	good, _ := json.Marshal(Batch{Alerts: []Alert{validAlert()}})
	f.Add(good)
	f.Add([]byte(`{"alerts":[{"id":"a","time":"2026-01-02T03:04:05Z","source":"audit","rule":"r","severity":"info","title":"t"}]}`))
	f.Add([]byte(`{"alerts":[{"id":"a","severity":"CRITICAL","evidence":{"a":[1,2,{"b":null}]}}]}`))
	f.Add([]byte(`{"alerts":null}`))
	f.Add([]byte(`{"alerts":[{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBatch(strings.NewReader(string(body)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of unknown class: %v", err)
			}
			return
		}
		// Whatever is accepted is valid, bounded and re-encodes to an
		// equally accepted batch.
		if len(b.Alerts) == 0 || len(b.Alerts) > MaxBatch {
			t.Fatalf("%d alerts accepted", len(b.Alerts))
		}
		for i := range b.Alerts {
			if err := b.Alerts[i].Validate(); err != nil {
				t.Fatalf("accepted an invalid alert: %v", err)
			}
			if fp := b.Alerts[i].EffectiveFingerprint(); fp == "" {
				t.Fatal("empty fingerprint")
			}
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeBatch(strings.NewReader(string(again))); err != nil {
			t.Fatalf("re-encoded batch refused: %v", err)
		}
	})
}
