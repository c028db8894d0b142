package rules

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxAuditEventSize bounds one audit record; larger records are refused
// rather than decoded, so a hostile API server or log cannot exhaust memory.
const MaxAuditEventSize = 1 << 20

// maxAuditDepth bounds nesting inside a record (the same bound as
// go-json-experiment's decoder), so a hostile "[[[[…" cannot exhaust the
// stack.
const maxAuditDepth = 10000

// ErrAuditTooLarge is returned for an audit record above MaxAuditEventSize.
var ErrAuditTooLarge = errors.New("audit event too large")

// ErrAuditSyntax is wrapped by every error about malformed audit JSON, so
// a receiver can answer 400 rather than 500.
var ErrAuditSyntax = errors.New("malformed audit JSON")

// AuditEvent is the part of an audit.k8s.io/v1 Event the ka.* fields read,
// decoded by DecodeAuditEvent. It is a small view, not the API type: Bulwark
// does not import k8s.io/apiserver for it.
//
// Its strings are substrings of the decoded record (no copies) and its
// slices are reused by the next decode into the same AuditEvent: a caller
// that keeps an event beyond the next decode copies it (Clone).
type AuditEvent struct {
	AuditID     string
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
	// StageTimestamp is the record's stageTimestamp (RFC 3339), as written.
	StageTimestamp string
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

// Clone returns a copy that shares nothing mutable with ev.
func (ev *AuditEvent) Clone() *AuditEvent {
	c := *ev
	for _, p := range []*[]string{&c.Groups, &c.SourceIPs, &c.Privileged, &c.Images, &c.HostPaths,
		&c.AddCapabilities, &c.BindingSubjects, &c.RuleVerbs, &c.RuleResources, &c.ServicePorts} {
		*p = append([]string(nil), (*p)...)
	}
	return &c
}

// reset empties ev, keeping the slices' storage for reuse.
func (ev *AuditEvent) reset() {
	*ev = AuditEvent{
		Groups: ev.Groups[:0], SourceIPs: ev.SourceIPs[:0], Privileged: ev.Privileged[:0], Images: ev.Images[:0],
		HostPaths: ev.HostPaths[:0], AddCapabilities: ev.AddCapabilities[:0], BindingSubjects: ev.BindingSubjects[:0],
		RuleVerbs: ev.RuleVerbs[:0], RuleResources: ev.RuleResources[:0], ServicePorts: ev.ServicePorts[:0],
	}
}

// DecodeAuditEvent decodes one audit.k8s.io/v1 Event (JSON) into ev, which
// is reset first so a caller can reuse it. It copies data once; see
// DecodeAuditEventString for the copy-free form.
func DecodeAuditEvent(data []byte, ev *AuditEvent) error {
	if len(data) > MaxAuditEventSize {
		return fmt.Errorf("decode audit event: %w (%d bytes)", ErrAuditTooLarge, len(data))
	}
	return DecodeAuditEventString(string(data), ev)
}

// DecodeAuditEventString is DecodeAuditEvent without the copy: ev's strings
// point into s.
func DecodeAuditEventString(s string, ev *AuditEvent) error {
	if len(s) > MaxAuditEventSize {
		return fmt.Errorf("decode audit event: %w (%d bytes)", ErrAuditTooLarge, len(s))
	}
	d := auditScanner{s: s}
	if err := d.event(ev); err != nil {
		return fmt.Errorf("decode audit event: %w", err)
	}
	if err := d.end(); err != nil {
		return fmt.Errorf("decode audit event: %w", err)
	}
	return nil
}

// DecodeAuditEventList decodes an audit.k8s.io/v1 EventList, as the API
// server's webhook backend posts it.
func DecodeAuditEventList(data []byte) ([]AuditEvent, error) {
	var out []AuditEvent
	err := EachAuditEvent(string(data), func(_ string, ev *AuditEvent) error {
		out = append(out, *ev.Clone())
		return nil
	})
	return out, err
}

// EachAuditEvent walks an audit.k8s.io/v1 EventList in body and calls fn
// with each item's raw JSON (a substring of body) and its decoded view. The
// view is reused between calls (Clone to keep it). The whole body is
// checked: a syntax error after some items is still an error (fn has then
// seen those items — callers that must not act on a bad batch validate
// first, as the webhook receiver does). An item above MaxAuditEventSize is
// an error.
func EachAuditEvent(body string, fn func(raw string, ev *AuditEvent) error) error {
	d := auditScanner{s: body}
	var ev AuditEvent
	ok, err := d.open('{')
	if err != nil || !ok {
		return fmt.Errorf("decode audit event list: %w", orSyntax(err, "want an object"))
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return fmt.Errorf("decode audit event list: %w", err)
		}
		if done {
			break
		}
		switch key {
		case "kind":
			k, err := d.str()
			if err != nil {
				return fmt.Errorf("decode audit event list: %w", err)
			}
			if k != "" && k != "EventList" {
				return fmt.Errorf("decode audit event list: %w: kind %q is not EventList", ErrAuditSyntax, k)
			}
		case "items":
			ok, err := d.open('[')
			if err != nil {
				return fmt.Errorf("decode audit event list: %w", err)
			}
			for n := 0; ok; n++ {
				done, err := d.nextElem(n == 0)
				if err != nil {
					return fmt.Errorf("decode audit event list: item %d: %w", n, err)
				}
				if done {
					break
				}
				d.ws()
				start := d.i
				if err := d.event(&ev); err != nil {
					return fmt.Errorf("decode audit event list: item %d: %w", n, err)
				}
				if d.i-start > MaxAuditEventSize {
					return fmt.Errorf("decode audit event list: item %d: %w (%d bytes)", n, ErrAuditTooLarge, d.i-start)
				}
				if err := fn(body[start:d.i], &ev); err != nil {
					return err
				}
			}
		default:
			if err := d.skip(); err != nil {
				return fmt.Errorf("decode audit event list: %w", err)
			}
		}
	}
	if err := d.end(); err != nil {
		return fmt.Errorf("decode audit event list: %w", err)
	}
	return nil
}

// auditScanner is a small, strict JSON reader for the ~30 keys the ka.*
// fields read. It replaces a reflection-based decoder that was the
// bottleneck (~18 µs/event): strings are returned as substrings of the
// input, subtrees the rules never read are skipped without building
// anything, and the event's slices are reused, so decoding a record costs no
// allocation beyond the caller's one string conversion (escaped strings,
// rare in audit records, allocate).
type auditScanner struct {
	s     string
	i     int
	depth int
}

type auditSyntaxError struct {
	off int
	msg string
}

func (e *auditSyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }
func (e *auditSyntaxError) Unwrap() error { return ErrAuditSyntax }

func (d *auditScanner) fail(msg string) error { return &auditSyntaxError{d.i, msg} }

func orSyntax(err error, msg string) error {
	if err != nil {
		return err
	}
	return &auditSyntaxError{0, msg}
}

func (d *auditScanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end checks that only whitespace follows.
func (d *auditScanner) end() error {
	d.ws()
	if d.i != len(d.s) {
		return d.fail("trailing data after the JSON value")
	}
	return nil
}

func (d *auditScanner) null() bool {
	if len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// open consumes c ('{' or '['); it reports false for null.
func (d *auditScanner) open(c byte) (bool, error) {
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		d.depth++
		if d.depth > maxAuditDepth {
			return false, d.fail("JSON nested too deeply")
		}
		return true, nil
	}
	if d.null() {
		return false, nil
	}
	if c == '{' {
		return false, d.fail("want an object")
	}
	return false, d.fail("want an array")
}

// nextKey reads the next member name of an object (and its colon), or
// reports done at the closing brace.
func (d *auditScanner) nextKey(first bool) (key string, done bool, err error) {
	d.ws()
	if d.i >= len(d.s) {
		return "", false, d.fail("unexpected end of JSON in an object")
	}
	if first && d.s[d.i] == '}' {
		d.i++
		d.depth--
		return "", true, nil
	}
	if !first {
		switch d.s[d.i] {
		case '}':
			d.i++
			d.depth--
			return "", true, nil
		case ',':
			d.i++
			d.ws()
		default:
			return "", false, d.fail("want , or } in an object")
		}
	}
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", false, d.fail("want a member name")
	}
	key, err = d.quoted(true)
	if err != nil {
		return "", false, err
	}
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != ':' {
		return "", false, d.fail("want : after a member name")
	}
	d.i++
	return key, false, nil
}

// nextElem moves to the next array element, or reports done at the
// closing bracket.
func (d *auditScanner) nextElem(first bool) (done bool, err error) {
	d.ws()
	if d.i >= len(d.s) {
		return false, d.fail("unexpected end of JSON in an array")
	}
	if d.s[d.i] == ']' {
		d.i++
		d.depth--
		return true, nil
	}
	if !first {
		if d.s[d.i] != ',' {
			return false, d.fail("want , or ] in an array")
		}
		d.i++
		d.ws()
		if d.i < len(d.s) && d.s[d.i] == ']' {
			return false, d.fail("trailing comma in an array")
		}
	}
	return false, nil
}

// quoted reads the string starting at d.s[d.i] == '"'. With want false the
// string is only validated and "" returned.
func (d *auditScanner) quoted(want bool) (string, error) {
	start := d.i + 1
	esc := false
	for j := start; j < len(d.s); j++ {
		c := d.s[j]
		switch {
		case c == '"':
			d.i = j + 1
			if !esc {
				return d.s[start:j], nil
			}
			b, err := jsontext.AppendUnquote(nil, d.s[start-1:j+1])
			if err != nil {
				d.i = start - 1
				return "", d.fail("invalid escape in a string")
			}
			if !want {
				return "", nil
			}
			return string(b), nil
		case c == '\\':
			esc = true
			j++
		case c < 0x20:
			d.i = j
			return "", d.fail("control character in a string")
		}
	}
	d.i = len(d.s)
	return "", d.fail("unterminated string")
}

// str reads a string value (null is "").
func (d *auditScanner) str() (string, error) {
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == '"' {
		return d.quoted(true)
	}
	if d.null() {
		return "", nil
	}
	return "", d.fail("want a string")
}

// strs appends the strings of an array (null is none).
func (d *auditScanner) strs(dst []string) ([]string, error) {
	ok, err := d.open('[')
	for n := 0; ok; n++ {
		done, err := d.nextElem(n == 0)
		if err != nil {
			return dst, err
		}
		if done {
			break
		}
		v, err := d.str()
		if err != nil {
			return dst, err
		}
		dst = append(dst, v)
	}
	return dst, err
}

// boolean reads true, false or null (false).
func (d *auditScanner) boolean() (bool, error) {
	d.ws()
	switch {
	case len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "true":
		d.i += 4
		return true, nil
	case len(d.s)-d.i >= 5 && d.s[d.i:d.i+5] == "false":
		d.i += 5
		return false, nil
	case d.null():
		return false, nil
	}
	return false, d.fail("want true or false")
}

// number reads a JSON number and returns its literal text.
func (d *auditScanner) number() (lit string, integer bool, err error) {
	d.ws()
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.s) && d.s[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return "", false, d.fail("want a number")
	}
	integer = true
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		integer = false
		if digits() == 0 {
			return "", false, d.fail("want digits after the decimal point")
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		integer = false
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return "", false, d.fail("want digits in the exponent")
		}
	}
	return d.s[start:d.i], integer, nil
}

// integer reads an integer value (null is absent); its literal text is
// returned too, so ports become strings without formatting.
func (d *auditScanner) integer() (lit string, v int64, ok bool, err error) {
	d.ws()
	if d.null() {
		return "", 0, false, nil
	}
	lit, isInt, err := d.number()
	if err != nil {
		return "", 0, false, err
	}
	if !isInt {
		return "", 0, false, d.fail("want an integer")
	}
	v, perr := strconv.ParseInt(lit, 10, 64)
	if perr != nil {
		return "", 0, false, d.fail("integer out of range")
	}
	return lit, v, true, nil
}

// skip validates and passes over any value.
func (d *auditScanner) skip() error {
	d.ws()
	if d.i >= len(d.s) {
		return d.fail("unexpected end of JSON")
	}
	switch c := d.s[d.i]; {
	case c == '"':
		_, err := d.quoted(false)
		return err
	case c == '{':
		d.open('{')
		if d.depth > maxAuditDepth {
			return d.fail("JSON nested too deeply")
		}
		for first := true; ; first = false {
			_, done, err := d.nextKey(first)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		d.open('[')
		if d.depth > maxAuditDepth {
			return d.fail("JSON nested too deeply")
		}
		for first := true; ; first = false {
			done, err := d.nextElem(first)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == 't' || c == 'f':
		_, err := d.boolean()
		return err
	case c == 'n':
		if d.null() {
			return nil
		}
		return d.fail("invalid literal")
	default:
		_, _, err := d.number()
		return err
	}
}

// object calls member for each name of an object (null is empty); member
// must consume the value.
func (d *auditScanner) object(member func(key string) error) error {
	ok, err := d.open('{')
	if err != nil || !ok {
		return err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if err := member(key); err != nil {
			return err
		}
	}
}

// array calls elem for each element of an array (null is empty).
func (d *auditScanner) array(elem func() error) error {
	ok, err := d.open('[')
	if err != nil || !ok {
		return err
	}
	for first := true; ; first = false {
		done, err := d.nextElem(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if err := elem(); err != nil {
			return err
		}
	}
}

// event decodes one audit event object into ev.
func (d *auditScanner) event(ev *AuditEvent) error {
	ev.reset()
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != '{' {
		return d.fail("want an audit event object")
	}
	var err error
	return d.object(func(key string) error {
		switch key {
		case "auditID":
			ev.AuditID, err = d.str()
		case "verb":
			ev.Verb, err = d.str()
		case "requestURI":
			ev.RequestURI, err = d.str()
		case "userAgent":
			ev.UserAgent, err = d.str()
		case "stage":
			ev.Stage, err = d.str()
		case "stageTimestamp":
			ev.StageTimestamp, err = d.str()
		case "sourceIPs":
			ev.SourceIPs, err = d.strs(ev.SourceIPs)
		case "user":
			err = d.object(func(k string) error {
				switch k {
				case "username":
					ev.User, err = d.str()
				case "groups":
					ev.Groups, err = d.strs(ev.Groups)
				default:
					err = d.skip()
				}
				return err
			})
		case "impersonatedUser":
			err = d.object(func(k string) error {
				if k == "username" {
					ev.ImpUser, err = d.str()
					return err
				}
				return d.skip()
			})
		case "objectRef":
			err = d.object(func(k string) error {
				switch k {
				case "resource":
					ev.Resource, err = d.str()
				case "subresource":
					ev.Subresource, err = d.str()
				case "namespace":
					ev.Namespace, err = d.str()
				case "name":
					ev.Name, err = d.str()
				case "apiGroup":
					ev.APIGroup, err = d.str()
				default:
					err = d.skip()
				}
				return err
			})
		case "responseStatus":
			err = d.object(func(k string) error {
				if k == "code" {
					_, ev.Code, ev.HasCode, err = d.integer()
					return err
				}
				return d.skip()
			})
		case "annotations":
			err = d.object(func(k string) error {
				if k == "authorization.k8s.io/decision" {
					ev.AuthDecision, err = d.str()
					return err
				}
				return d.skip()
			})
		case "requestObject":
			err = d.requestObject(ev)
		default:
			err = d.skip()
		}
		return err
	})
}

// requestObject reads the request body: pod specs (directly, in a
// workload's template or a CronJob's job template), role bindings, roles
// and services. Everything else in it is skipped.
func (d *auditScanner) requestObject(ev *AuditEvent) error {
	var err error
	return d.object(func(key string) error {
		switch key {
		case "spec":
			err = d.object(func(k string) error {
				switch k {
				case "template":
					err = d.podTemplate(ev)
				case "jobTemplate":
					err = d.member("spec", func() error {
						return d.member("template", func() error { return d.podTemplate(ev) })
					})
				case "type":
					ev.ServiceType, err = d.str()
				case "ports":
					err = d.array(func() error {
						return d.object(func(k string) error {
							if k == "port" {
								lit, _, ok, err := d.integer()
								if ok {
									ev.ServicePorts = append(ev.ServicePorts, lit)
								}
								return err
							}
							return d.skip()
						})
					})
				default:
					var handled bool
					handled, err = d.podSpecMember(ev, k)
					if !handled {
						err = d.skip()
					}
				}
				return err
			})
		case "roleRef":
			err = d.member("name", func() error { ev.BindingRole, err = d.str(); return err })
		case "subjects":
			err = d.array(func() error {
				var name string
				ok, err := d.peekObject()
				if ok {
					err = d.member("name", func() error { name, err = d.str(); return err })
					ev.BindingSubjects = append(ev.BindingSubjects, name)
				}
				return err
			})
		case "rules":
			err = d.array(func() error {
				return d.object(func(k string) error {
					switch k {
					case "verbs":
						ev.RuleVerbs, err = d.strs(ev.RuleVerbs)
					case "resources":
						ev.RuleResources, err = d.strs(ev.RuleResources)
					default:
						err = d.skip()
					}
					return err
				})
			})
		default:
			err = d.skip()
		}
		return err
	})
}

// peekObject reports whether an object (not null) comes next; anything
// else is an error.
func (d *auditScanner) peekObject() (bool, error) {
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == '{' {
		return true, nil
	}
	if len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		return false, d.skip()
	}
	return false, d.fail("want an object")
}

// member reads an object, calling fn for the one member named name and
// skipping the others.
func (d *auditScanner) member(name string, fn func() error) error {
	return d.object(func(k string) error {
		if k == name {
			return fn()
		}
		return d.skip()
	})
}

// podTemplate reads {"spec": podSpec, ...}.
func (d *auditScanner) podTemplate(ev *AuditEvent) error {
	return d.member("spec", func() error {
		return d.object(func(k string) error {
			handled, err := d.podSpecMember(ev, k)
			if !handled {
				return d.skip()
			}
			return err
		})
	})
}

// podSpecMember reads one member of a pod spec if the rules use it.
func (d *auditScanner) podSpecMember(ev *AuditEvent, k string) (bool, error) {
	var err error
	switch k {
	case "containers", "initContainers", "ephemeralContainers":
		err = d.array(func() error { return d.container(ev) })
	case "volumes":
		err = d.array(func() error {
			ev.HasPodSpec = true
			return d.member("hostPath", func() error {
				var p string
				ok, err := d.peekObject()
				if ok {
					err = d.member("path", func() error { p, err = d.str(); return err })
					ev.HostPaths = append(ev.HostPaths, p)
				}
				return err
			})
		})
	case "hostNetwork":
		ev.HostNetwork, err = d.boolean()
		ev.HasPodSpec = ev.HasPodSpec || ev.HostNetwork
	case "hostPID":
		ev.HostPID, err = d.boolean()
		ev.HasPodSpec = ev.HasPodSpec || ev.HostPID
	case "hostIPC":
		ev.HostIPC, err = d.boolean()
		ev.HasPodSpec = ev.HasPodSpec || ev.HostIPC
	default:
		return false, nil
	}
	return true, err
}

// container reads one container: its image, privileged flag and added
// capabilities.
func (d *auditScanner) container(ev *AuditEvent) error {
	ev.HasPodSpec = true
	priv := false
	var img string
	var err error
	err = d.object(func(k string) error {
		switch k {
		case "image":
			img, err = d.str()
		case "securityContext":
			err = d.object(func(k string) error {
				switch k {
				case "privileged":
					priv, err = d.boolean()
				case "capabilities":
					err = d.member("add", func() error {
						ev.AddCapabilities, err = d.strs(ev.AddCapabilities)
						return err
					})
				default:
					err = d.skip()
				}
				return err
			})
		default:
			err = d.skip()
		}
		return err
	})
	ev.Images = append(ev.Images, img)
	if priv {
		ev.Privileged = append(ev.Privileged, "true")
	} else {
		ev.Privileged = append(ev.Privileged, "false")
	}
	return err
}
