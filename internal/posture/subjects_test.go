package posture

import (
	"strings"
	"testing"
)

func TestSubjectRightsAndDefaultSA(t *testing.T) {
	rep := evaluate(t, Config{}, decodeFiles(t, "testdata/rbac/subjects.yaml"))
	v := verdicts(rep)
	for _, c := range []struct {
		key    string
		status Status
		msg    string
	}{
		{"User/bob BW-K8S-0043", StatusFail, "User bob can exec/attach into pods (namespace shop via RoleBinding shop/bob-exec -> Role exec); create pods or pod controllers (cluster-wide via ClusterRoleBinding bob-pods -> ClusterRole pod-runner)"},
		// A ServiceAccount subject without a namespace is in the binding's.
		{"ServiceAccount/shop/web BW-K8S-0043", StatusFail, "exec/attach into pods"},
		{"ServiceAccount/shop/api BW-K8S-0043", StatusPass, ""},
		// The bound ClusterRole is not in the input: no verdict either way.
		{"Group/auditors BW-K8S-0043", StatusSkipped, "bound roles not in the input: RoleBinding shop/viewers -> ClusterRole view"},
		{"ServiceAccount/shop/default BW-K8S-0042", StatusPass, ""},
		{"ServiceAccount/legacy/default BW-K8S-0042", StatusFail, "ServiceAccount legacy/default does not set automountServiceAccountToken: false"},
	} {
		r, ok := v[c.key]
		if !ok {
			t.Errorf("%s: no result", c.key)
			continue
		}
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s: %s %q; want %s %q", c.key, r.Status, r.Message, c.status, c.msg)
		}
	}
	if _, ok := v["Group/system:authenticated BW-K8S-0043"]; ok {
		t.Error("system: group evaluated as a subject")
	}
	// The patch of BW-K8S-0042 fixes it.
	r := v["ServiceAccount/legacy/default BW-K8S-0042"]
	if len(r.Patch) != 1 || r.Patch[0].Path != "/automountServiceAccountToken" {
		t.Errorf("patch %+v", r.Patch)
	}
	for _, s := range rep.Namespaces {
		if s.Name == "(namespace not set)" {
			t.Errorf("subjects scored under %q", s.Name)
		}
	}
}
