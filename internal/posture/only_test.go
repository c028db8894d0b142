package posture

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOnlyFailuresOnly checks the webhook's settings against a full
// evaluation of the real manifests: Only and FailuresOnly drop results,
// never change one, and keep each failure's details.
func TestOnlyFailuresOnly(t *testing.T) {
	in := decodeFiles(t, manifestFiles(t)...)
	full := evaluate(t, Config{}, in)
	type row struct {
		Control, Object, Status, Message, Exception string
		Details                                     []Detail
	}
	key := func(rep *Report, i int) row {
		r := &rep.Results[i]
		o := rep.Objects[r.Object]
		return row{Control: r.Control, Object: fmt.Sprintf("%s/%s/%s@%s:%d", o.Kind, o.Namespace, o.Name, o.Source, o.Doc),
			Status: string(r.Status), Message: r.Message, Exception: r.Exception, Details: rep.Details(i)}
	}
	upstream := map[string]bool{}
	for _, c := range full.Controls {
		if c.Upstream != "" {
			upstream[c.ID] = true
		}
	}
	for _, tc := range []struct {
		name         string
		only         []string
		withUpstream bool
	}{
		{"bulwark controls", []string{"BW-K8S-0001", "BW-K8S-0002", "BW-K8S-0011", "BW-K8S-0016"}, false},
		{"with every upstream check", []string{"BW-K8S-0003"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			only := append([]string(nil), tc.only...)
			if tc.withUpstream {
				for id := range upstream {
					only = append(only, id)
				}
			}
			sel := map[string]bool{}
			for _, id := range only {
				sel[id] = true
			}
			got := evaluate(t, Config{Only: only, FailuresOnly: true, SkipScores: true}, in)
			var want, have []row
			for i := range full.Results {
				r := &full.Results[i]
				if sel[r.Control] && (r.Status == StatusFail || r.Status == StatusExcepted) {
					want = append(want, key(full, i))
				}
			}
			for i := range got.Results {
				have = append(have, key(got, i))
			}
			if len(want) == 0 {
				t.Fatal("the manifests fail none of the selected controls: the test proves nothing")
			}
			if diff := cmp.Diff(want, have); diff != "" {
				t.Errorf("results (-full, filtered +only):\n%s", diff)
			}
			for i, o := range got.Objects {
				if i >= len(in.Objects) || o.Kind == "Namespace" {
					continue
				}
				wantLevel := ""
				if tc.withUpstream {
					wantLevel = full.Objects[i].PSSLevel
				}
				if o.PSSLevel != wantLevel {
					t.Errorf("%s/%s: PSS level %q, want %q", o.Kind, o.Name, o.PSSLevel, wantLevel)
				}
			}
		})
	}
	if _, err := New(Config{Only: []string{"BW-K8S-9999"}}); err == nil {
		t.Error("New accepted an unknown control in Only")
	}
}
