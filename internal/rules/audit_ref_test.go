package rules

// The struct-based decoder Bulwark used before the hand-written scanner,
// kept as the test oracle: the scanner must decode every realistic record
// exactly as this does (TestAuditScannerMatchesReference).

import (
	"fmt"
	"strconv"
	"testing"

	json "github.com/go-json-experiment/json"
)

type auditJSON struct {
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	Stage      string `json:"stage"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	SourceIPs []string `json:"sourceIPs"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int64 `json:"code"`
	} `json:"responseStatus"`
	RequestObject *requestJSON `json:"requestObject"`
	Annotations   struct {
		Decision string `json:"authorization.k8s.io/decision"`
	} `json:"annotations"`
}

type containerJSON struct {
	Image           string `json:"image"`
	SecurityContext *struct {
		Privileged   *bool `json:"privileged"`
		Capabilities *struct {
			Add []string `json:"add"`
		} `json:"capabilities"`
	} `json:"securityContext"`
}

type podSpecJSON struct {
	Containers          []containerJSON `json:"containers"`
	InitContainers      []containerJSON `json:"initContainers"`
	EphemeralContainers []containerJSON `json:"ephemeralContainers"`
	Volumes             []struct {
		HostPath *struct {
			Path string `json:"path"`
		} `json:"hostPath"`
	} `json:"volumes"`
	HostNetwork bool `json:"hostNetwork"`
	HostPID     bool `json:"hostPID"`
	HostIPC     bool `json:"hostIPC"`
}

type requestJSON struct {
	Kind string `json:"kind"`
	Spec struct {
		podSpecJSON
		Template *struct {
			Spec *podSpecJSON `json:"spec"`
		} `json:"template"`
		JobTemplate *struct {
			Spec struct {
				Template struct {
					Spec *podSpecJSON `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
		Type  string `json:"type"`
		Ports []struct {
			Port     int64 `json:"port"`
			NodePort int64 `json:"nodePort"`
		} `json:"ports"`
	} `json:"spec"`
	RoleRef *struct {
		Name string `json:"name"`
	} `json:"roleRef"`
	Subjects []struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"subjects"`
	Rules []struct {
		Verbs     []string `json:"verbs"`
		Resources []string `json:"resources"`
	} `json:"rules"`
}

func decodeAuditEventRef(data []byte, ev *AuditEvent) error {
	var raw auditJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("decode audit event: %w", err)
	}
	return ev.fillRef(&raw)
}

func (ev *AuditEvent) fillRef(raw *auditJSON) error {
	*ev = AuditEvent{
		Verb: raw.Verb, RequestURI: raw.RequestURI, UserAgent: raw.UserAgent, Stage: raw.Stage,
		User: raw.User.Username, Groups: raw.User.Groups, SourceIPs: raw.SourceIPs,
		AuthDecision: raw.Annotations.Decision,
	}
	if raw.ImpersonatedUser != nil {
		ev.ImpUser = raw.ImpersonatedUser.Username
	}
	if r := raw.ObjectRef; r != nil {
		ev.Resource, ev.Subresource, ev.Namespace, ev.Name, ev.APIGroup = r.Resource, r.Subresource, r.Namespace, r.Name, r.APIGroup
	}
	if raw.ResponseStatus != nil {
		ev.Code, ev.HasCode = raw.ResponseStatus.Code, true
	}
	req := raw.RequestObject
	if req == nil {
		return nil
	}
	spec := &req.Spec.podSpecJSON
	switch {
	case req.Spec.Template != nil && req.Spec.Template.Spec != nil:
		spec = req.Spec.Template.Spec
	case req.Spec.JobTemplate != nil && req.Spec.JobTemplate.Spec.Template.Spec != nil:
		spec = req.Spec.JobTemplate.Spec.Template.Spec
	}
	ev.addPodSpecRef(spec)
	if req.RoleRef != nil {
		ev.BindingRole = req.RoleRef.Name
	}
	for _, s := range req.Subjects {
		ev.BindingSubjects = append(ev.BindingSubjects, s.Name)
	}
	for _, r := range req.Rules {
		ev.RuleVerbs = append(ev.RuleVerbs, r.Verbs...)
		ev.RuleResources = append(ev.RuleResources, r.Resources...)
	}
	ev.ServiceType = req.Spec.Type
	for _, p := range req.Spec.Ports {
		ev.ServicePorts = append(ev.ServicePorts, strconv.FormatInt(p.Port, 10))
	}
	return nil
}

func (ev *AuditEvent) addPodSpecRef(s *podSpecJSON) {
	n := len(s.Containers) + len(s.InitContainers) + len(s.EphemeralContainers)
	if n == 0 && len(s.Volumes) == 0 && !s.HostNetwork && !s.HostPID && !s.HostIPC {
		return
	}
	ev.HasPodSpec = true
	ev.HostNetwork, ev.HostPID, ev.HostIPC = s.HostNetwork, s.HostPID, s.HostIPC
	for _, list := range [][]containerJSON{s.Containers, s.InitContainers, s.EphemeralContainers} {
		for _, c := range list {
			ev.Images = append(ev.Images, c.Image)
			priv := "false"
			if sc := c.SecurityContext; sc != nil {
				if sc.Privileged != nil && *sc.Privileged {
					priv = "true"
				}
				if sc.Capabilities != nil {
					ev.AddCapabilities = append(ev.AddCapabilities, sc.Capabilities.Add...)
				}
			}
			ev.Privileged = append(ev.Privileged, priv)
		}
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			ev.HostPaths = append(ev.HostPaths, v.HostPath.Path)
		}
	}
}

// BenchmarkAuditRulesReference is BenchmarkAuditRules with the old decoder,
// to compare the two under the same machine load.
func BenchmarkAuditRulesReference(b *testing.B) {
	eng := mustDefaults(b)
	data := benchAudit()
	var a AuditEvent
	ev := &Event{Audit: &a}
	var dst []Match
	b.ReportAllocs()
	cpu0 := processCPU()
	for i := 0; b.Loop(); i++ {
		if err := decodeAuditEventRef(data[i%len(data)], &a); err != nil {
			b.Fatal(err)
		}
		dst = eng.Evaluate(ev, dst[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	}
}
