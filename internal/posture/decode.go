package posture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"
)

// Limits bound what one input may cost. A file over MaxFileBytes is refused
// whole (an error for that file; the scan goes on with the others); documents
// and List items past MaxObjects are dropped and counted as one error.
type Limits struct {
	MaxFileBytes int64 // default 64 MiB
	MaxDocBytes  int   // default 8 MiB: one YAML document
	MaxObjects   int   // default 200,000 objects (documents + List items) per input
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 64 << 20
	}
	if l.MaxDocBytes <= 0 {
		l.MaxDocBytes = 8 << 20
	}
	if l.MaxObjects <= 0 {
		l.MaxObjects = 200_000
	}
	return l
}

// ErrTooLarge is wrapped by the errors for inputs over a Limit.
var ErrTooLarge = errors.New("input over limit")

// ObjectRef says where an object came from and what it is.
type ObjectRef struct {
	Source     string `json:"source"`         // file path, or "-" for stdin
	Doc        int    `json:"doc"`            // 0-based document index in Source
	Item       int    `json:"item,omitempty"` // 1-based index inside a List document; 0 when not in a List
	Line       int    `json:"line,omitempty"` // 1-based line where the document starts
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// PSSLevel is the highest Pod Security Standards level the pod spec
	// meets ("restricted", "baseline" or "privileged"); empty for objects
	// without a pod spec. Set by Evaluate.
	PSSLevel string `json:"pssLevel,omitempty"`
}

// String is kind/namespace/name, the form messages and exceptions use.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Object is one decoded manifest object: Typed for the kinds Bulwark knows,
// Unstructured for the rest (CRDs, custom resources, kinds of API groups not
// registered here).
type Object struct {
	Ref          ObjectRef
	Typed        runtime.Object
	Unstructured *unstructured.Unstructured
	// Raw is the object's JSON as read from a manifest (nil for objects
	// fetched from a cluster). Custom CEL controls decode it instead of
	// converting Typed by reflection, which costs about three times more.
	Raw []byte
}

// DecodeError is one document that could not be read; the others were.
type DecodeError struct {
	Source string `json:"source"`
	Doc    int    `json:"doc"`
	Item   int    `json:"item,omitempty"`
	Line   int    `json:"line,omitempty"`
	Err    string `json:"error"`
}

func (e DecodeError) Error() string {
	loc := e.Source
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Item > 0 {
		return fmt.Sprintf("%s (document %d, item %d): %s", loc, e.Doc, e.Item, e.Err)
	}
	return fmt.Sprintf("%s (document %d): %s", loc, e.Doc, e.Err)
}

// Skip is an object that was read but not evaluated, and why.
type Skip struct {
	Object ObjectRef `json:"object"`
	Reason string    `json:"reason"`
}

// Decoded is what Decode read from its inputs.
type Decoded struct {
	Objects []Object
	Errors  []DecodeError
	// Unavailable names kinds the source could not read and why (cluster
	// mode: a forbidden list); controls that need them are skipped rather
	// than failed on missing data.
	Unavailable map[string]string
	// Skipped are objects the source read but chose not to evaluate (cluster
	// mode: pods a controller owns), carried into Report.Skipped.
	Skipped []Skip
}

// Decoder turns YAML/JSON manifests into typed Kubernetes objects. It holds
// its own scheme, so two decoders share no state.
type Decoder struct {
	lim   Limits
	deser runtime.Decoder
}

// NewDecoder returns a Decoder for the built-in kinds Bulwark evaluates (and
// the other core/apps/batch/rbac/networking/policy kinds, which decode typed
// and are reported as not evaluated).
func NewDecoder(lim Limits) (*Decoder, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, rbacv1.AddToScheme,
		networkingv1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("new decoder: %w", err)
		}
	}
	return &Decoder{lim: lim.withDefaults(), deser: serializer.NewCodecFactory(s).UniversalDeserializer()}, nil
}

// Decode reads every document of r (multi-document YAML, or JSON) and adds
// what it found to out. Only a failure to read r itself, an input over
// MaxFileBytes, or ctx's end is returned as an error; a document that does
// not parse is recorded in out.Errors and the rest are read.
func (d *Decoder) Decode(ctx context.Context, source string, r io.Reader, out *Decoded) error {
	data, err := io.ReadAll(io.LimitReader(r, d.lim.MaxFileBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", source, err)
	}
	if int64(len(data)) > d.lim.MaxFileBytes {
		return fmt.Errorf("read %s: %w: larger than %d bytes", source, ErrTooLarge, d.lim.MaxFileBytes)
	}
	budget := d.lim.MaxObjects
	docs := splitDocuments(data)
	for i, doc := range docs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("decode %s: %w", source, err)
		}
		if budget <= 0 {
			out.Errors = append(out.Errors, DecodeError{Source: source, Doc: i, Line: doc.line,
				Err: fmt.Sprintf("%v: more than %d objects; the remaining %d documents were not read", ErrTooLarge, d.lim.MaxObjects, len(docs)-i)})
			break
		}
		budget -= d.decodeDoc(source, i, doc, budget, out)
	}
	return nil
}

type document struct {
	body []byte
	line int // 1-based line of the first body line
}

// splitDocuments cuts YAML at "---" lines, remembering where each document
// starts so errors can point at a line. Documents with nothing but blank
// lines and comments are dropped, but still counted in the index.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	flush := func(end int) {
		body := data[start:end]
		if !emptyYAML(body) {
			docs = append(docs, document{body: body, line: startLine})
		} else {
			docs = append(docs, document{line: startLine})
		}
	}
	for pos := 0; pos < len(data); {
		nl := bytes.IndexByte(data[pos:], '\n')
		end := len(data)
		if nl >= 0 {
			end = pos + nl + 1
		}
		l := bytes.TrimRight(data[pos:end], "\r\n")
		if isSeparator(l) {
			flush(pos)
			start, startLine = end, line+1
		}
		pos = end
		line++
	}
	flush(len(data))
	// Drop empty documents, keeping indices of real ones stable by
	// marking empties with a nil body.
	return docs
}

func isSeparator(l []byte) bool {
	if !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	rest := l[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

func emptyYAML(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		t := bytes.TrimSpace(sc.Bytes())
		if len(t) == 0 || t[0] == '#' || bytes.Equal(t, []byte("...")) {
			continue
		}
		return false
	}
	return true
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// absLine turns a YAML parser's document-relative "line N" into a line of
// the file.
func absLine(err error, docLine int) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if n, e := strconv.Atoi(m[1]); e == nil && n > 0 {
			return docLine + n - 1
		}
	}
	return docLine
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

// decodeDoc decodes one document (expanding a List) and returns how many
// objects of the budget it used.
func (d *Decoder) decodeDoc(source string, idx int, doc document, budget int, out *Decoded) int {
	if doc.body == nil {
		return 0
	}
	fail := func(item, line int, format string, a ...any) {
		out.Errors = append(out.Errors, DecodeError{Source: source, Doc: idx, Item: item, Line: line, Err: fmt.Sprintf(format, a...)})
	}
	if len(doc.body) > d.lim.MaxDocBytes {
		fail(0, doc.line, "%v: document larger than %d bytes", ErrTooLarge, d.lim.MaxDocBytes)
		return 1
	}
	js, err := yaml.YAMLToJSON(doc.body)
	if err != nil {
		fail(0, absLine(err, doc.line), "invalid YAML: %v", err)
		return 1
	}
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		fail(0, doc.line, "not a Kubernetes object: %v", err)
		return 1
	}
	if tm.Kind == "" {
		if string(js) == "null" {
			return 0
		}
		fail(0, doc.line, "not a Kubernetes object: no kind")
		return 1
	}
	if strings.HasSuffix(tm.Kind, "List") && tm.Metadata.Name == "" && tm.Items != nil {
		used := 1
		for i, raw := range tm.Items {
			if used >= budget {
				fail(i+1, doc.line, "%v: more than %d objects; %d List items were not read", ErrTooLarge, d.lim.MaxObjects, len(tm.Items)-i)
				break
			}
			used++
			var itm typeMeta
			if err := json.Unmarshal(raw, &itm); err != nil || itm.Kind == "" {
				fail(i+1, doc.line, "List item is not a Kubernetes object")
				continue
			}
			d.decodeObject(source, idx, i+1, doc.line, raw, itm, out)
		}
		return used
	}
	d.decodeObject(source, idx, 0, doc.line, js, tm, out)
	return 1
}

func (d *Decoder) decodeObject(source string, idx, item, line int, js []byte, tm typeMeta, out *Decoded) {
	ref := ObjectRef{Source: source, Doc: idx, Item: item, Line: line, APIVersion: tm.APIVersion,
		Kind: tm.Kind, Name: tm.Metadata.Name, Namespace: tm.Metadata.Namespace}
	obj, _, err := d.deser.Decode(js, nil, nil)
	switch {
	case err == nil:
		out.Objects = append(out.Objects, Object{Ref: ref, Typed: obj, Raw: js})
	case runtime.IsNotRegisteredError(err) || runtime.IsMissingVersion(err):
		u := &unstructured.Unstructured{}
		if uerr := u.UnmarshalJSON(js); uerr != nil {
			out.Errors = append(out.Errors, DecodeError{Source: source, Doc: idx, Item: item, Line: line, Err: fmt.Sprintf("decode %s: %v", tm.Kind, uerr)})
			return
		}
		out.Objects = append(out.Objects, Object{Ref: ref, Unstructured: u})
	default:
		out.Errors = append(out.Errors, DecodeError{Source: source, Doc: idx, Item: item, Line: line, Err: fmt.Sprintf("decode %s %q: %v", tm.Kind, tm.Metadata.Name, err)})
	}
}
