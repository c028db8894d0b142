package policy

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/celeval"
)

// TestVulnVerdictKeptUntilExceptionExpires: the verdict on an image's
// findings is kept between requests, but not past the expiry of one of
// the rule's exceptions, nor for findings that changed.
func TestVulnVerdictKeptUntilExceptionExpires(t *testing.T) {
	l := newTestLoader(t)
	expires := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	set := loadYAML(t, l, policyDoc("p", "  mode: deny\n  vulnerabilities:\n    maxSeverity: high\n    exceptions:\n"+
		"      - {id: CVE-2021-44228, reason: patched in place, expires: \""+expires+"\"}"))
	img := "registry.example.com/shop/web:1.4.2"
	rep := &ImageReport{Scanned: true, Digest: "sha256:0a", Findings: []Finding{log4shell, glibcNoFix, medium}}
	req := podWith("n", "web", img)
	req.Images = StaticImages{img: rep}
	before := []string{"verdict=deny", "p deny vulnerabilities CVE-2019-1010022 c0"}
	for range 2 {
		if diff := cmp.Diff(before, summary(set.Evaluate(context.Background(), req))); diff != "" {
			t.Fatalf("before the exception expires (-want +got):\n%s", diff)
		}
	}
	// New findings (a new scan): a new verdict, at once.
	rep2 := *rep
	rep2.Findings = []Finding{medium}
	req.Images = StaticImages{img: &rep2}
	if diff := cmp.Diff([]string{"verdict=allow"}, summary(set.Evaluate(context.Background(), req))); diff != "" {
		t.Errorf("new findings (-want +got):\n%s", diff)
	}
	req.Images = StaticImages{img: rep}
	time.Sleep(1600 * time.Millisecond)
	after := []string{"verdict=deny", "p deny vulnerabilities CVE-2019-1010022 c0", "p deny vulnerabilities CVE-2021-44228 c0"}
	if diff := cmp.Diff(after, summary(set.Evaluate(context.Background(), req))); diff != "" {
		t.Errorf("after the exception expired (-want +got):\n%s", diff)
	}
}

// TestCELObjectFields: the object variable is built with the fields the
// custom rules select, and whole once a rule uses it otherwise.
func TestCELObjectFields(t *testing.T) {
	l := newTestLoader(t)
	team := "  mode: audit\n  rules:\n    - name: team\n      expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\""
	set := loadYAML(t, l, policyDoc("a", team)+policyDoc("b", "  mode: audit\n  rules:\n    - name: kind\n      expression: \"object.kind == 'Deployment'\""))
	got := slices.Sorted(maps.Keys(set.celFields[celeval.VarObject]))
	if diff := cmp.Diff([]string{"kind", "metadata"}, got); diff != "" {
		t.Errorf("object fields (-want +got):\n%s", diff)
	}
	set = loadYAML(t, l, policyDoc("a", team)+policyDoc("b", "  mode: audit\n  rules:\n    - name: size\n      expression: \"object.size() > 1\""))
	if f, ok := set.celFields[celeval.VarObject]; ok {
		t.Errorf("object fields %v with a rule using the whole object: want it whole", f)
	}
}
