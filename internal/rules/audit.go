package rules

import (
	"errors"
	"fmt"
	json "github.com/go-json-experiment/json"
	"strconv"
)

// MaxAuditEventSize bounds one audit record; larger records are refused
// rather than decoded, so a hostile API server or log cannot exhaust memory.
const MaxAuditEventSize = 1 << 20

// ErrAuditTooLarge is returned for an audit record above MaxAuditEventSize.
var ErrAuditTooLarge = errors.New("audit event too large")

// AuditEvent is the part of an audit.k8s.io/v1 Event the ka.* fields read,
// decoded by DecodeAuditEvent. It is a small view, not the API type: Bulwark
// does not import k8s.io/apiserver for it.
type AuditEvent struct {
	Verb        string
	RequestURI  string
	UserAgent   string
	Stage       string
	User        string
	Groups      []string
	ImpUser     string
	SourceIPs   []string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	APIGroup    string
	Code        int64
	HasCode     bool
	// AuthDecision is the "authorization.k8s.io/decision" annotation.
	AuthDecision string

	// From the request object (pods and pod templates of workloads).
	Privileged      []string // "true"/"false" per container
	Images          []string
	HostPaths       []string
	AddCapabilities []string
	HostNetwork     bool
	HostPID         bool
	HostIPC         bool
	HasPodSpec      bool
	// From bindings and roles.
	BindingRole     string
	BindingSubjects []string
	RuleVerbs       []string
	RuleResources   []string
	// From services.
	ServiceType  string
	ServicePorts []string
}

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

// DecodeAuditEvent decodes one audit.k8s.io/v1 Event (JSON) into ev, which
// is reset first so a caller can reuse it.
func DecodeAuditEvent(data []byte, ev *AuditEvent) error {
	if len(data) > MaxAuditEventSize {
		return fmt.Errorf("decode audit event: %w (%d bytes)", ErrAuditTooLarge, len(data))
	}
	var raw auditJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("decode audit event: %w", err)
	}
	return ev.fill(&raw)
}

// DecodeAuditEventList decodes an audit.k8s.io/v1 EventList, as the API
// server's webhook backend posts it.
func DecodeAuditEventList(data []byte) ([]AuditEvent, error) {
	var list struct {
		Kind  string      `json:"kind"`
		Items []auditJSON `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("decode audit event list: %w", err)
	}
	if list.Kind != "" && list.Kind != "EventList" {
		return nil, fmt.Errorf("decode audit event list: kind %q is not EventList", list.Kind)
	}
	out := make([]AuditEvent, len(list.Items))
	for i := range list.Items {
		if err := out[i].fill(&list.Items[i]); err != nil {
			return nil, fmt.Errorf("decode audit event list: item %d: %w", i, err)
		}
	}
	return out, nil
}

func (ev *AuditEvent) fill(raw *auditJSON) error {
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
	ev.addPodSpec(spec)
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

func (ev *AuditEvent) addPodSpec(s *podSpecJSON) {
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
