package posture

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestResultDetails: a failed result lists its problems one by one with
// the container each is about, and Message still joins them as before.
func TestResultDetails(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n"}, Spec: corev1.PodSpec{HostNetwork: true,
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}},
		Containers:     []corev1.Container{{Name: "app", Image: "app:1"}, {Name: "side", Image: "side:1", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}}}
	rep, err := e.Evaluate(context.Background(), &Decoded{Objects: []Object{{Ref: ObjectRef{Kind: "Pod", Namespace: "n", Name: "p"}, Typed: pod}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]Detail{}
	for i, r := range rep.Results {
		if r.Object == 0 && r.Status == StatusFail {
			got[r.Control] = rep.Details(i)
		}
	}
	want := map[string][]Detail{
		"BW-K8S-0001": {
			{Container: "init", ContainerKind: "initContainers", Image: "busybox:1", Message: `init container "init" sets securityContext.privileged=true`, Problem: "sets securityContext.privileged=true"},
			{Container: "side", ContainerKind: "containers", Image: "side:1", Message: `container "side" sets securityContext.privileged=true`, Problem: "sets securityContext.privileged=true"},
		},
	}
	if diff := cmp.Diff(want["BW-K8S-0001"], got["BW-K8S-0001"]); diff != "" {
		t.Errorf("BW-K8S-0001 details (-want +got):\n%s", diff)
	}
	// The upstream check: the two privileged containers, by re-running
	// the check on each alone, not by reading its message.
	var names []string
	for _, d := range got["BW-PSS-privileged"] {
		names = append(names, d.Container)
	}
	if diff := cmp.Diff([]string{"init", "side"}, names); diff != "" {
		t.Errorf("BW-PSS-privileged containers (-want +got):\n%s", diff)
	}
	// A pod-level problem belongs to no container.
	if ds := got["BW-PSS-hostNamespaces"]; len(ds) != 1 || ds[0].Container != "" {
		t.Errorf("BW-PSS-hostNamespaces details: %+v", ds)
	}
	// Details never disagree with Message (results of a single pod-level
	// problem may have none: Message is then that problem).
	for i, r := range rep.Results {
		if len(rep.Details(i)) == 0 || r.Control[:7] == "BW-PSS-" {
			continue
		}
		var msgs []string
		for _, d := range rep.Details(i) {
			msgs = append(msgs, d.Message)
		}
		if j := strings.Join(msgs, "; "); j != r.Message {
			t.Errorf("%s: details %q, message %q", r.Control, j, r.Message)
		}
	}
}
