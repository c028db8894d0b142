package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Limits of what a policy source may cost to load.
const (
	MaxFileBytes = 4 << 20
	MaxPolicies  = 1000
	maxListLen   = 10000
)

// ErrInvalid is wrapped by every load error caused by the document (not by
// reading it), so callers can tell a bad policy from an unreadable file.
var ErrInvalid = errors.New("invalid policy")

// LoadError is one problem in a policy source, with the line at fault.
type LoadError struct {
	Source string
	Line   int
	Msg    string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg)
	}
	return e.Source + ": " + e.Msg
}

func (e *LoadError) Unwrap() error { return ErrInvalid }

// The YAML shape. Every struct is decoded with unknown fields refused, so
// a misspelt key is an error at load time instead of a rule silently off.
type docYAML struct {
	APIVersion string       `yaml:"apiVersion"`
	Kind       string       `yaml:"kind"`
	Metadata   metadataYAML `yaml:"metadata"`
	Spec       *specYAML    `yaml:"spec"`
	Items      []docYAML    `yaml:"items"`
}

type metadataYAML struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type specYAML struct {
	Mode            string          `yaml:"mode"`
	Scope           *scopeYAML      `yaml:"scope"`
	Exemptions      []exemptionYAML `yaml:"exemptions"`
	Vulnerabilities *vulnYAML       `yaml:"vulnerabilities"`
	Configuration   *configYAML     `yaml:"configuration"`
	Provenance      *provYAML       `yaml:"provenance"`
	Rules           []celRuleYAML   `yaml:"rules"`
	Connect         *connectYAML    `yaml:"connect"`
	// Params is any YAML mapping, seen by the custom rules as `params`
	// (ValidatingAdmissionPolicy's paramKind, inline): a node, so that the
	// strict decode checks every other field and leaves this one free.
	// (A yaml.Node value: a *yaml.Node would be decoded into as a struct.)
	Params yaml.Node `yaml:"params"`
	// ParamRef names a ConfigMap in Bulwark's namespace whose data the
	// custom rules see as params instead (ValidatingAdmissionPolicy's
	// paramRef), read when a request is judged.
	ParamRef *paramRefYAML `yaml:"paramRef"`
	// ParamKind makes paramRef name a resource of any kind (a CRD, a
	// ConfigMap anywhere): the custom rules then see the whole object as
	// params, as a ValidatingAdmissionPolicy's paramKind.
	ParamKind *paramKindYAML `yaml:"paramKind"`
}

type paramKindYAML struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type paramRefYAML struct {
	Name string `yaml:"name"`
	// Namespace and Selector: with paramKind only (see ParamQuery).
	Namespace string        `yaml:"namespace"`
	Selector  *selectorYAML `yaml:"selector"`
	// NotFound: deny (default) or allow, when the ConfigMap does not exist
	// (ValidatingAdmissionPolicy's parameterNotFoundAction).
	NotFound string `yaml:"notFound"`
}

type scopeYAML struct {
	Namespaces        []string      `yaml:"namespaces"`
	ExcludeNamespaces []string      `yaml:"excludeNamespaces"`
	NamespaceSelector *selectorYAML `yaml:"namespaceSelector"`
	ObjectSelector    *selectorYAML `yaml:"objectSelector"`
	Kinds             []string      `yaml:"kinds"`
	Operations        []string      `yaml:"operations"`
}

type selectorYAML struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

type exemptionYAML struct {
	Namespace string            `yaml:"namespace"`
	Kind      string            `yaml:"kind"`
	Name      string            `yaml:"name"`
	Labels    map[string]string `yaml:"labels"`
	Rules     []string          `yaml:"rules"`
	Reason    string            `yaml:"reason"`
	Expires   string            `yaml:"expires"`
}

type vulnYAML struct {
	MaxSeverity    string              `yaml:"maxSeverity"`
	FixableOnly    bool                `yaml:"fixableOnly"`
	MinCVSS        float64             `yaml:"minCVSS"`
	KnownExploited bool                `yaml:"knownExploited"`
	Deny           []string            `yaml:"deny"`
	Exceptions     []vulnExceptionYAML `yaml:"exceptions"`
	Unscanned      string              `yaml:"unscanned"`
	ScanTimeout    string              `yaml:"scanTimeout"`
}

type vulnExceptionYAML struct {
	ID      string `yaml:"id"`
	Reason  string `yaml:"reason"`
	Expires string `yaml:"expires"`
}

type configYAML struct {
	PodSecurity      string   `yaml:"podSecurity"`
	PSSVersion       string   `yaml:"pssVersion"`
	Hardening        bool     `yaml:"hardening"`
	Controls         []string `yaml:"controls"`
	AllowedHostPaths []string `yaml:"allowedHostPaths"`
	// Mutate lists controls the mutating webhook fixes before the object
	// is judged (each required by this rule and fixable).
	Mutate []string `yaml:"mutate"`
}

type provYAML struct {
	TrustedRegistries []string `yaml:"trustedRegistries"`
	NoLatest          bool     `yaml:"noLatest"`
	MutableTags       []string `yaml:"mutableTags"`
	RequireDigest     bool     `yaml:"requireDigest"`
}

type celRuleYAML struct {
	Name              string `yaml:"name"`
	Expression        string `yaml:"expression"`
	Message           string `yaml:"message"`
	MessageExpression string `yaml:"messageExpression"`
	Fix               string `yaml:"fix"`
	Severity          string `yaml:"severity"`
}

type connectYAML struct {
	Deny        []string `yaml:"deny"`
	AllowUsers  []string `yaml:"allowUsers"`
	AllowGroups []string `yaml:"allowGroups"`
}

// Loader reads and compiles policy documents. One Loader can be shared; it
// holds the CEL environment (costly to build) and the catalogue of
// configuration controls rules may name.
type Loader struct {
	cel      *celeval.Env
	controls map[string]posture.Control
	now      func() time.Time
}

// NewLoader builds a Loader. cel may be nil only if no policy uses custom
// rules (loading one is then an error). now is the clock for expiry checks
// (time.Now when nil).
func NewLoader(cel *celeval.Env, now func() time.Time) (*Loader, error) {
	if now == nil {
		now = time.Now
	}
	ev, err := posture.New(posture.Config{})
	if err != nil {
		return nil, fmt.Errorf("new policy loader: %w", err)
	}
	l := &Loader{cel: cel, now: now, controls: map[string]posture.Control{}}
	for _, c := range ev.Controls() {
		l.controls[c.ID] = c
	}
	return l, nil
}

// Source is one policy input.
type Source struct {
	Name string // file path, or CentralSource(name)
	Data []byte
}

// CentralSource names a policy document stored in central
// ("central:deny-critical"): central spells it so in its validation errors
// and the webhooks in their load errors, so an error reads the same in both.
func CentralSource(name string) string { return "central:" + name }

// LoadCentral checks the document data, to be stored on central as name,
// the way the webhooks will load it: together with the other stored
// documents (stored maps name to YAML; an entry for name itself is
// replaced), so a policy name used twice is caught. The error of a bad
// document wraps ErrInvalid and names the line at fault.
func (l *Loader) LoadCentral(ctx context.Context, stored map[string]string, name string, data []byte) (*Set, error) {
	srcs := make([]Source, 0, len(stored)+1)
	for _, n := range slices.Sorted(maps.Keys(stored)) {
		if n != name {
			srcs = append(srcs, Source{Name: CentralSource(n), Data: []byte(stored[n])})
		}
	}
	return l.Load(ctx, append(srcs, Source{Name: CentralSource(name), Data: data})...)
}

// Load parses and compiles sources into a Set. Any error in any document
// rejects the whole load (the caller keeps its previous Set): a policy
// half-loaded is a gate half-open. The error joins every LoadError found.
func (l *Loader) Load(ctx context.Context, sources ...Source) (*Set, error) {
	var all []*Policy
	var errs []error
	h := sha256.New()
	for _, src := range sources {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load policies: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", src.Name, len(src.Data))
		h.Write(src.Data)
		ps, err := l.parse(src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, ps...)
	}
	if len(all) > MaxPolicies {
		errs = append(errs, &LoadError{Source: "policies", Msg: fmt.Sprintf("%d policies (limit %d)", len(all), MaxPolicies)})
	}
	seen := map[string]*Policy{}
	for _, p := range all {
		if q, dup := seen[p.Name]; dup {
			errs = append(errs, &LoadError{Source: p.Source, Line: p.Line, Msg: fmt.Sprintf("policy %q is also defined at %s:%d", p.Name, q.Source, q.Line)})
		}
		seen[p.Name] = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return newSet(all, hex.EncodeToString(h.Sum(nil))[:16])
}

// LoadFiles reads policy files, and the *.yaml/*.yml files of directories
// (not recursively, symlinks not followed inside directories), and loads
// them together.
func (l *Loader) LoadFiles(ctx context.Context, paths ...string) (*Set, error) {
	files, err := ExpandPaths(paths)
	if err != nil {
		return nil, err
	}
	srcs := make([]Source, 0, len(files))
	for _, f := range files {
		b, err := readFile(f)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, Source{Name: f, Data: b})
	}
	return l.Load(ctx, srcs...)
}

// ExpandPaths lists the policy files paths name, in a stable order.
func ExpandPaths(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read policy %s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read policy dir %s: %w", p, err)
		}
		for _, e := range ents {
			ext := filepath.Ext(e.Name())
			if e.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read policies: no policy files in %s", strings.Join(paths, ", "))
	}
	return files, nil
}

func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", p, err)
	}
	if len(b) > MaxFileBytes {
		return nil, &LoadError{Source: p, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	return b, nil
}

var typeNames = strings.NewReplacer(
	"in type ", "in ", "policy.docYAML", "the document", "policy.metadataYAML", "metadata", "policy.specYAML", "spec",
	"policy.scopeYAML", "spec.scope", "policy.selectorYAML", "a label selector", "policy.exemptionYAML", "an exemption",
	"policy.vulnYAML", "spec.vulnerabilities", "policy.vulnExceptionYAML", "a vulnerability exception",
	"policy.configYAML", "spec.configuration", "policy.provYAML", "spec.provenance", "policy.celRuleYAML", "a rule",
	"policy.connectYAML", "spec.connect", "yaml: ", "")

// parse reads every document of one source.
func (l *Loader) parse(src Source) (ps []*Policy, err error) {
	defer func() {
		// yaml.v3 is robust, but a policy source may come from the network:
		// never let a parser bug take the webhook down.
		if r := recover(); r != nil {
			ps, err = nil, &LoadError{Source: src.Name, Msg: fmt.Sprintf("unreadable YAML: %v", r)}
		}
	}()
	if len(src.Data) > MaxFileBytes {
		return nil, &LoadError{Source: src.Name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	nodes := yaml.NewDecoder(bytes.NewReader(src.Data))
	strict := yaml.NewDecoder(bytes.NewReader(src.Data))
	strict.KnownFields(true)
	var errs []error
	for {
		var n yaml.Node
		err := nodes.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, yamlError(src.Name, err))
			break
		}
		var d docYAML
		if err := strict.Decode(&d); err != nil {
			errs = append(errs, yamlError(src.Name, err))
			continue
		}
		if n.Kind == 0 || (len(n.Content) == 1 && n.Content[0].Tag == "!!null") {
			continue // an empty document
		}
		root := &n
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			root = n.Content[0]
		}
		got, err := l.document(src.Name, root, &d, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, got...)
		if len(ps) > MaxPolicies {
			errs = append(errs, &LoadError{Source: src.Name, Line: root.Line, Msg: fmt.Sprintf("more than %d policies", MaxPolicies)})
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

func yamlError(source string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, lineError(source, typeNames.Replace(e)))
		}
		return errors.Join(errs...)
	}
	return lineError(source, typeNames.Replace(err.Error()))
}

// lineError turns yaml.v3's "line N: msg" into a LoadError with the line.
func lineError(source, msg string) error {
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, m, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return &LoadError{Source: source, Line: n, Msg: m}
			}
		}
	}
	return &LoadError{Source: source, Msg: msg}
}

// at walks a YAML node by mapping keys and sequence indexes and returns the
// line of the deepest node reached, so semantic errors point at the value.
func at(n *yaml.Node, path ...any) int {
	line := 0
	for n != nil {
		line = n.Line
		if len(path) == 0 {
			break
		}
		var next *yaml.Node
		switch k := path[0].(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		n, path = next, path[1:]
	}
	return line
}

// document compiles one Policy or the items of a PolicyList.
func (l *Loader) document(source string, n *yaml.Node, d *docYAML, prefix []any) ([]*Policy, error) {
	bad := func(msg string, path ...any) error {
		return &LoadError{Source: source, Line: at(n, path...), Msg: msg}
	}
	if d.APIVersion != APIVersion {
		return nil, bad(fmt.Sprintf("apiVersion %q: want %s", d.APIVersion, APIVersion), "apiVersion")
	}
	switch d.Kind {
	case KindList:
		if d.Spec != nil || d.Metadata.Name != "" {
			return nil, bad("a PolicyList holds items only", "kind")
		}
		if len(d.Items) > MaxPolicies {
			return nil, bad(fmt.Sprintf("%d items (limit %d)", len(d.Items), MaxPolicies), "items")
		}
		var out []*Policy
		var errs []error
		items := findKey(n, "items")
		for i := range d.Items {
			var item *yaml.Node
			if items != nil && i < len(items.Content) {
				item = items.Content[i]
			}
			if item == nil {
				item = n
			}
			if d.Items[i].Kind == KindList {
				errs = append(errs, &LoadError{Source: source, Line: item.Line, Msg: "a PolicyList may not nest another"})
				continue
			}
			ps, err := l.document(source, item, &d.Items[i], append(prefix, "items", i))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, ps...)
		}
		return out, errors.Join(errs...)
	case KindPolicy:
	default:
		return nil, bad(fmt.Sprintf("kind %q: want %s or %s", d.Kind, KindPolicy, KindList), "kind")
	}
	if len(d.Items) > 0 {
		return nil, bad("a Policy has no items (use kind: PolicyList)", "items")
	}
	if !nameRE.MatchString(d.Metadata.Name) {
		return nil, bad(fmt.Sprintf("metadata.name %q: want a DNS subdomain name (lower case letters, digits, '-', '.')", d.Metadata.Name), "metadata", "name")
	}
	if d.Spec == nil {
		return nil, bad("spec is required", "kind")
	}
	p, err := l.compile(source, n, d)
	if err != nil {
		return nil, err
	}
	return []*Policy{p}, nil
}

func findKey(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// parseExpiry reads a date (2026-12-31, the end of that day UTC) or an
// RFC 3339 time.
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %q: want a date (2026-12-31) or an RFC 3339 time", s)
	}
	return t.Add(24*time.Hour - time.Nanosecond), nil
}

var knownOperations = []string{"CREATE", "UPDATE", "CONNECT"}

func (l *Loader) compile(source string, n *yaml.Node, d *docYAML) (*Policy, error) {
	s := d.Spec
	p := &Policy{Name: d.Metadata.Name, Source: source, Line: n.Line, Mode: Mode(s.Mode), posture: -1}
	var errs []error
	bad := func(msg string, path ...any) {
		errs = append(errs, &LoadError{Source: source, Line: at(n, append([]any{"spec"}, path...)...), Msg: fmt.Sprintf("policy %s: %s", p.Name, msg)})
	}
	switch p.Mode {
	case ModeAudit, ModeWarn, ModeDeny:
	case "":
		bad("spec.mode is required: audit, warn or deny")
	default:
		bad(fmt.Sprintf("mode %q: want audit, warn or deny", s.Mode), "mode")
	}
	if sc := s.Scope; sc != nil {
		for i, g := range append(slices.Clone(sc.Namespaces), sc.ExcludeNamespaces...) {
			if _, err := filepath.Match(g, ""); err != nil {
				bad(fmt.Sprintf("namespace pattern %q: %v", g, err), "scope", map[bool]string{true: "namespaces", false: "excludeNamespaces"}[i < len(sc.Namespaces)])
			}
		}
		p.scope.namespaces, p.scope.excludeNamespaces = sc.Namespaces, sc.ExcludeNamespaces
		var err error
		if p.scope.namespaceSelector, err = newSelector(sc.NamespaceSelector); err != nil {
			bad(err.Error(), "scope", "namespaceSelector")
		}
		if p.scope.objectSelector, err = newSelector(sc.ObjectSelector); err != nil {
			bad(err.Error(), "scope", "objectSelector")
		}
		if len(sc.Kinds) > 0 {
			p.scope.kinds = map[string]bool{}
			for i, k := range sc.Kinds {
				if !slices.Contains(Kinds(), k) {
					bad(fmt.Sprintf("kind %q: want one of %s", k, strings.Join(Kinds(), ", ")), "scope", "kinds", i)
				}
				p.scope.kinds[k] = true
			}
		}
		if len(sc.Operations) > 0 {
			p.scope.operations = map[string]bool{}
			for i, o := range sc.Operations {
				if !slices.Contains(knownOperations, o) {
					bad(fmt.Sprintf("operation %q: want CREATE, UPDATE or CONNECT", o), "scope", "operations", i)
				}
				p.scope.operations[o] = true
			}
		}
	}
	now := l.now()
	for i, x := range s.Exemptions {
		e := Exemption{Namespace: x.Namespace, Kind: x.Kind, Name: x.Name, Labels: x.Labels, Rules: x.Rules, Reason: strings.TrimSpace(x.Reason),
			Line: at(n, "spec", "exemptions", i)}
		if e.Reason == "" {
			bad("an exemption needs a reason", "exemptions", i)
		}
		if x.Expires == "" {
			bad("an exemption needs an expiry (expires: 2026-12-31)", "exemptions", i)
		} else if t, err := parseExpiry(x.Expires); err != nil {
			bad(err.Error(), "exemptions", i, "expires")
		} else {
			e.Expires = t
		}
		for _, g := range []string{x.Namespace, x.Kind, x.Name} {
			if _, err := filepath.Match(g, ""); err != nil {
				bad(fmt.Sprintf("pattern %q: %v", g, err), "exemptions", i)
			}
		}
		if !e.Expires.IsZero() && now.After(e.Expires) {
			continue // expired: no longer applies (Set.Expired lists it)
		}
		p.exemptions = append(p.exemptions, e)
	}
	if v := s.Vulnerabilities; v != nil {
		r := &vulnRule{fixableOnly: v.FixableOnly, minCVSS: v.MinCVSS, knownExploited: v.KnownExploited,
			deny: map[string]bool{}, exceptions: map[string]vulnException{}, unscanned: Unscanned(v.Unscanned), scanTimeout: 10 * time.Second}
		if v.MaxSeverity != "" {
			sev, err := vulndb.ParseSeverity(v.MaxSeverity)
			switch {
			case err != nil || strings.EqualFold(v.MaxSeverity, "unknown"):
				bad(fmt.Sprintf("maxSeverity %q: want none, low, medium, high or critical", v.MaxSeverity), "vulnerabilities", "maxSeverity")
			case strings.EqualFold(v.MaxSeverity, "none"):
				r.maxSeverity, r.severitySet = vulndb.SeverityUnknown, true
			default:
				r.maxSeverity, r.severitySet = sev, true
			}
		}
		if v.MinCVSS < 0 || v.MinCVSS > 10 {
			bad(fmt.Sprintf("minCVSS %v: want 0-10", v.MinCVSS), "vulnerabilities", "minCVSS")
		}
		for _, id := range v.Deny {
			if !r.deny[id] {
				r.denyList = append(r.denyList, id)
			}
			r.deny[id] = true
		}
		for i, x := range v.Exceptions {
			if x.ID == "" || strings.TrimSpace(x.Reason) == "" {
				bad("a vulnerability exception needs an id and a reason", "vulnerabilities", "exceptions", i)
				continue
			}
			ex := vulnException{reason: x.Reason}
			if x.Expires != "" {
				t, err := parseExpiry(x.Expires)
				if err != nil {
					bad(err.Error(), "vulnerabilities", "exceptions", i, "expires")
				}
				ex.expires = t
				if now.After(t) {
					continue
				}
			}
			r.exceptions[x.ID] = ex
		}
		switch r.unscanned {
		case "":
			r.unscanned = UnscannedDeny
		case UnscannedAllow, UnscannedDeny, UnscannedScan:
		default:
			bad(fmt.Sprintf("unscanned %q: want allow, deny or scan", v.Unscanned), "vulnerabilities", "unscanned")
		}
		if v.ScanTimeout != "" {
			d, err := time.ParseDuration(v.ScanTimeout)
			if err != nil || d <= 0 || d > 30*time.Second {
				bad(fmt.Sprintf("scanTimeout %q: want a duration up to 30s (the API server's webhook timeout)", v.ScanTimeout), "vulnerabilities", "scanTimeout")
			}
			r.scanTimeout = d
		}
		if !r.severitySet && !r.knownExploited && len(r.deny) == 0 && r.unscanned == UnscannedAllow {
			bad("vulnerabilities: set maxSeverity, knownExploited, deny or unscanned: deny", "vulnerabilities")
		}
		p.vuln = r
	}
	var pssVersion string
	var hostPaths, registries []string
	if c := s.Configuration; c != nil {
		r := &configRule{podSecurity: c.PodSecurity, controls: map[string]bool{}}
		switch c.PodSecurity {
		case "", "baseline", "restricted":
		case "privileged":
			r.podSecurity = "" // privileged is unrestricted
		default:
			bad(fmt.Sprintf("podSecurity %q: want baseline or restricted", c.PodSecurity), "configuration", "podSecurity")
		}
		pssVersion = c.PSSVersion
		if pssVersion != "" {
			if _, err := posture.New(posture.Config{PSSVersion: pssVersion}); err != nil {
				bad(fmt.Sprintf("pssVersion %q: want latest or v1.N", pssVersion), "configuration", "pssVersion")
			}
		}
		if c.Hardening {
			for _, id := range hardeningControls {
				r.controls[id] = true
			}
		}
		for i, id := range c.Controls {
			ctl, ok := l.controls[id]
			if !ok {
				bad(fmt.Sprintf("control %q is not in the catalogue (bulwark posture manifests --format json lists it)", id), "configuration", "controls", i)
				continue
			}
			if ctl.Upstream != "" {
				bad(fmt.Sprintf("control %s is a Pod Security Standards check: use podSecurity: %s", id, ctl.PSS), "configuration", "controls", i)
				continue
			}
			r.controls[id] = true
		}
		for i, id := range c.Mutate {
			switch {
			case !r.controls[id]:
				bad(fmt.Sprintf("mutate: control %q is not required by this rule (hardening or controls)", id), "configuration", "mutate", i)
			case !posture.Fixable(id):
				bad(fmt.Sprintf("mutate: control %s has no automatic fix (fixable: %s)", id, strings.Join(posture.FixableControls(), ", ")),
					"configuration", "mutate", i)
			case slices.Contains(r.mutate, id):
				bad(fmt.Sprintf("mutate: control %s listed twice", id), "configuration", "mutate", i)
			default:
				r.mutate = append(r.mutate, id)
			}
		}
		hostPaths = c.AllowedHostPaths
		if r.podSecurity == "" && len(r.controls) == 0 {
			bad("configuration: set podSecurity, hardening or controls", "configuration")
		}
		p.config = r
	}
	if v := s.Provenance; v != nil {
		r := &provRule{trusted: len(v.TrustedRegistries) > 0, noLatest: v.NoLatest, requireDigest: v.RequireDigest, mutableTags: map[string]bool{}}
		for _, t := range v.MutableTags {
			r.mutableTags[t] = true
		}
		registries = v.TrustedRegistries
		for i, reg := range registries {
			if reg == "" || strings.ContainsAny(reg, " :@") && !strings.Contains(reg, ".") {
				bad(fmt.Sprintf("trusted registry %q: want a registry host or repository prefix", reg), "provenance", "trustedRegistries", i)
			}
		}
		if !r.trusted && !r.noLatest && !r.requireDigest && len(r.mutableTags) == 0 {
			bad("provenance: set trustedRegistries, noLatest, mutableTags or requireDigest", "provenance")
		}
		p.prov = r
	}
	var params any
	if s.Params.Kind != 0 {
		var err error
		if params, err = paramsValue(&s.Params); err != nil {
			bad(err.Error(), "params")
		}
		if len(s.Rules) == 0 {
			bad("params without rules: only custom rules see params", "params")
		}
	}
	var paramRef string
	var paramAllow bool
	var paramKind *paramKindRef
	if s.ParamKind != nil && s.ParamRef == nil {
		bad("paramKind without paramRef: paramRef says which object (name or selector)", "paramKind")
	}
	if pr := s.ParamRef; pr != nil && s.ParamKind != nil {
		pk := s.ParamKind
		paramKind = &paramKindRef{apiVersion: pk.APIVersion, kind: pk.Kind, name: pr.Name, namespace: pr.Namespace}
		if gv, err := schema.ParseGroupVersion(pk.APIVersion); err != nil || pk.APIVersion == "" || gv.Version == "" {
			bad(fmt.Sprintf("paramKind.apiVersion %q: want GROUP/VERSION, or v1 for the core group", pk.APIVersion), "paramKind", "apiVersion")
		}
		if !kindRE.MatchString(pk.Kind) {
			bad(fmt.Sprintf("paramKind.kind %q: want a kind such as ConfigMap", pk.Kind), "paramKind", "kind")
		}
		switch {
		case s.Params.Kind != 0:
			bad("params and paramRef: set one (inline params, or a resource's)", "paramRef")
		case (pr.Name == "") == (pr.Selector == nil):
			bad("paramRef: set one of name and selector", "paramRef")
		case pr.Name != "" && !nameRE.MatchString(pr.Name):
			bad(fmt.Sprintf("paramRef.name %q: want an object name (lower case letters, digits, '-' and '.')", pr.Name), "paramRef", "name")
		case pr.Namespace != "" && !nameRE.MatchString(pr.Namespace):
			bad(fmt.Sprintf("paramRef.namespace %q: want a namespace name", pr.Namespace), "paramRef", "namespace")
		case len(s.Rules) == 0:
			bad("paramRef without rules: only custom rules see params", "paramRef")
		}
		if pr.Selector != nil {
			sel, err := newSelector(pr.Selector)
			if err != nil {
				bad(err.Error(), "paramRef", "selector")
			} else {
				paramKind.selector = sel.sel
			}
		}
	} else if pr != nil {
		paramRef = pr.Name
		switch {
		case s.Params.Kind != 0:
			bad("params and paramRef: set one (inline params, or a ConfigMap's data)", "paramRef")
		case pr.Namespace != "" || pr.Selector != nil:
			bad("paramRef.namespace and paramRef.selector need a paramKind (e.g. {apiVersion: v1, kind: ConfigMap}; without it paramRef.name is a ConfigMap in Bulwark's namespace)", "paramRef")
		case !nameRE.MatchString(pr.Name):
			bad(fmt.Sprintf("paramRef.name %q: want a ConfigMap name (lower case letters, digits, '-' and '.')", pr.Name), "paramRef", "name")
		case len(s.Rules) == 0:
			bad("paramRef without rules: only custom rules see params", "paramRef")
		}
	}
	if pr := s.ParamRef; pr != nil {
		switch pr.NotFound {
		case "", "deny":
		case "allow":
			paramAllow = true
		default:
			bad(fmt.Sprintf("paramRef.notFound %q: want deny or allow", pr.NotFound), "paramRef", "notFound")
		}
	}
	names := map[string]bool{}
	for i, c := range s.Rules {
		if !nameRE.MatchString(c.Name) {
			bad(fmt.Sprintf("rule name %q: want lower case letters, digits and '-'", c.Name), "rules", i, "name")
		}
		if names[c.Name] {
			bad(fmt.Sprintf("rule %q defined twice", c.Name), "rules", i, "name")
		}
		names[c.Name] = true
		if l.cel == nil {
			bad("custom CEL rules are not available in this build", "rules", i)
			continue
		}
		r := celRule{name: c.Name, message: c.Message, fix: c.Fix, severity: vulndb.SeverityMedium, params: params, group: -1,
			paramRef: paramRef, paramNotFoundAllow: paramAllow, paramKind: paramKind}
		if c.Severity != "" {
			sev, err := vulndb.ParseSeverity(c.Severity)
			if err != nil || sev == vulndb.SeverityUnknown {
				bad(fmt.Sprintf("severity %q: want low, medium, high or critical", c.Severity), "rules", i, "severity")
			}
			r.severity = sev
		}
		prg, err := l.cel.Compile(c.Expression)
		if err != nil {
			bad(fmt.Sprintf("rule %s: expression: %v", c.Name, err), "rules", i, "expression")
		}
		r.expr = prg
		if c.MessageExpression != "" {
			if r.msgExpr, err = l.cel.CompileMessage(c.MessageExpression); err != nil {
				bad(fmt.Sprintf("rule %s: messageExpression: %v", c.Name, err), "rules", i, "messageExpression")
			}
		}
		if r.message == "" && r.msgExpr == nil {
			r.message = "custom rule " + c.Name + " failed: " + c.Expression
		}
		p.cel = append(p.cel, r)
	}
	if c := s.Connect; c != nil {
		r := &connectRule{deny: map[string]bool{}, allowUsers: c.AllowUsers, allowGroups: c.AllowGroups}
		for i, op := range c.Deny {
			switch op {
			case "exec", "attach", "portforward":
				r.deny[op] = true
			default:
				bad(fmt.Sprintf("connect.deny %q: want exec, attach or portforward", op), "connect", "deny", i)
			}
		}
		if len(r.deny) == 0 {
			bad("connect: list the operations to deny (exec, attach, portforward)", "connect")
		}
		p.connect = r
	}
	if p.vuln == nil && p.config == nil && p.prov == nil && len(p.cel) == 0 && p.connect == nil {
		bad("spec has no rules: set vulnerabilities, configuration, provenance, rules or connect")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if p.config != nil || p.prov != nil {
		k := newPostureKey(pssVersion, hostPaths, registries)
		p.postureKey = &k
	}
	return p, nil
}

type selector struct{ sel labels.Selector }

func newSelector(s *selectorYAML) (*selector, error) {
	if s == nil {
		return nil, nil
	}
	ls := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{Key: e.Key,
			Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values})
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("label selector: %w", err)
	}
	return &selector{sel}, nil
}

func (s *selector) matches(l map[string]string) bool {
	return s == nil || s.sel.Matches(labels.Set(l))
}

// paramsValue converts spec.params into the JSON-shaped form CEL variables
// hold (through JSON, so that numbers, strings and nulls read exactly as in
// `object`). It must be a mapping with string keys.
func paramsValue(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("params: want a mapping (key: value), as a ValidatingAdmissionPolicy's params object")
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	v, err := jsonShape(v)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return celeval.FromJSON(raw)
}

// jsonShape turns what yaml.v3 decodes into `any` into values JSON can
// carry: maps keyed by strings only, timestamps as RFC 3339 strings.
func jsonShape(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			e, err := jsonShape(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			t[k] = e
		}
		return t, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("key %v: want a string key", k)
			}
			e, err := jsonShape(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ks, err)
			}
			out[ks] = e
		}
		return out, nil
	case []any:
		for i, e := range t {
			e, err := jsonShape(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			t[i] = e
		}
		return t, nil
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, fmt.Errorf("%v: not a JSON number", t)
		}
	}
	return v, nil
}
