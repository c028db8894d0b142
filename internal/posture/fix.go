package posture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"gopkg.in/yaml.v3"
)

// ErrUnfixable is wrapped when a file is left alone because it does not
// parse: a fix is only written to a file Bulwark fully understood.
var ErrUnfixable = errors.New("file not fixed")

// AppliedFix is one control's patch applied to one object.
type AppliedFix struct {
	Control string    `json:"control"`
	Object  ObjectRef `json:"object"`
	Ops     []PatchOp `json:"ops"`
}

// FixedFile is the outcome of Fix on one file.
type FixedFile struct {
	Source  string
	Before  []byte
	After   []byte // equal to Before when nothing applied
	Applied []AppliedFix
}

// Changed reports whether the file differs after fixing.
func (f *FixedFile) Changed() bool { return !bytes.Equal(f.Before, f.After) }

// Diff is the unified diff from Before to After ("" when unchanged).
func (f *FixedFile) Diff() string {
	if !f.Changed() {
		return ""
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(f.Before)), B: difflib.SplitLines(string(f.After)),
		FromFile: "a/" + strings.TrimPrefix(f.Source, "/"), ToFile: "b/" + strings.TrimPrefix(f.Source, "/"), Context: 3,
	})
	if err != nil {
		return ""
	}
	return d
}

// Fix applies the JSON patches of the failing controls (all controls with
// patches when controls is empty) to the manifests in data. Only the
// documents that change are re-encoded, through yaml.v3's node tree, so
// comments and key order stay; the other documents are kept byte for byte.
// A file with any document that does not decode is not touched
// (ErrUnfixable).
//
// Patches are computed against the original object, so two controls may
// both add the same missing parent (securityContext); an "add" of an object
// onto an existing object therefore merges the two instead of replacing,
// and a "remove" of a path already gone is a no-op.
//
// Fixes are applied in passes (at most fixPasses): a patch a control
// offers only once another control is fixed (allowPrivilegeEscalation=false
// on a container that was privileged) is applied in the next pass.
func Fix(ctx context.Context, ev *Evaluator, dec *Decoder, source string, data []byte, controls []string) (*FixedFile, error) {
	out := &FixedFile{Source: source, Before: data, After: data}
	for range fixPasses {
		f, err := fixOnce(ctx, ev, dec, source, out.After, controls)
		if err != nil {
			return nil, err
		}
		if !f.Changed() {
			break
		}
		out.After, out.Applied = f.After, append(out.Applied, f.Applied...)
	}
	return out, nil
}

// fixPasses bounds Fix's passes over one file.
const fixPasses = 3

func fixOnce(ctx context.Context, ev *Evaluator, dec *Decoder, source string, data []byte, controls []string) (*FixedFile, error) {
	out := &FixedFile{Source: source, Before: data, After: data}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		// Re-encoding would turn JSON into YAML.
		return nil, fmt.Errorf("fix %s: %w: JSON manifests are not rewritten", source, ErrUnfixable)
	}
	var in Decoded
	if err := dec.Decode(ctx, source, bytes.NewReader(data), &in); err != nil {
		return nil, fmt.Errorf("fix %s: %w: %w", source, ErrUnfixable, err)
	}
	if len(in.Errors) > 0 {
		return nil, fmt.Errorf("fix %s: %w: %s", source, ErrUnfixable, in.Errors[0].Error())
	}
	rep, err := ev.Evaluate(ctx, &in)
	if err != nil {
		return nil, fmt.Errorf("fix %s: %w", source, err)
	}
	want := map[string]bool{}
	for _, c := range controls {
		want[c] = true
	}
	type docFix struct {
		fixes []AppliedFix
	}
	byDoc := map[int]*docFix{}
	for _, r := range rep.Results {
		if r.Status != StatusFail || len(r.Patch) == 0 || (len(want) > 0 && !want[r.Control]) {
			continue
		}
		ref := rep.Objects[r.Object]
		if ref.Source != source {
			continue
		}
		ops := r.Patch
		if ref.Item > 0 {
			prefix := "/items/" + strconv.Itoa(ref.Item-1)
			ops = make([]PatchOp, len(r.Patch))
			for i, op := range r.Patch {
				op.Path = prefix + op.Path
				ops[i] = op
			}
		}
		d := byDoc[ref.Doc]
		if d == nil {
			d = &docFix{}
			byDoc[ref.Doc] = d
		}
		d.fixes = append(d.fixes, AppliedFix{Control: r.Control, Object: ref, Ops: ops})
	}
	if len(byDoc) == 0 {
		return out, nil
	}
	docs := splitDocuments(data)
	idx := make([]int, 0, len(byDoc))
	for i := range byDoc {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var buf bytes.Buffer
	prev := 0
	for _, di := range idx {
		if di >= len(docs) || docs[di].body == nil {
			return nil, fmt.Errorf("fix %s: %w: document %d not found", source, ErrUnfixable, di)
		}
		doc := docs[di]
		var root yaml.Node
		if err := yaml.Unmarshal(doc.body, &root); err != nil || len(root.Content) == 0 {
			return nil, fmt.Errorf("fix %s: %w: document %d: %v", source, ErrUnfixable, di, err)
		}
		for _, f := range byDoc[di].fixes {
			for _, op := range f.Ops {
				if err := applyOp(root.Content[0], op); err != nil {
					return nil, fmt.Errorf("fix %s: document %d: %s: %w", source, di, f.Control, err)
				}
			}
			out.Applied = append(out.Applied, f)
		}
		var enc bytes.Buffer
		e := yaml.NewEncoder(&enc)
		e.SetIndent(2)
		if err := e.Encode(&root); err != nil {
			return nil, fmt.Errorf("fix %s: encode document %d: %w", source, di, err)
		}
		e.Close()
		start := offset(data, doc.body)
		buf.Write(data[prev:start])
		body := enc.Bytes()
		if compactStyle(doc.body) {
			body = compactSequences(body)
		}
		if !bytes.HasSuffix(doc.body, []byte("\n")) {
			body = bytes.TrimSuffix(body, []byte("\n"))
		}
		buf.Write(body)
		prev = start + len(doc.body)
	}
	buf.Write(data[prev:])
	out.After = buf.Bytes()
	return out, nil
}

// offset is where sub (a subslice of data) starts in data.
func offset(data, sub []byte) int {
	return cap(data) - cap(sub)
}

// compactStyle says whether a document writes a block sequence at its
// key's indentation ("containers:\n- name: x"), the style many charts use;
// yaml.v3 always indents sequences, so such documents are re-compacted
// after encoding.
func compactStyle(b []byte) bool {
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		trimmed := strings.TrimLeft(lines[i], " ")
		keyCol := len(lines[i]) - len(trimmed)
		for strings.HasPrefix(trimmed, "- ") {
			trimmed, keyCol = trimmed[2:], keyCol+2
		}
		if strings.HasPrefix(trimmed, "#") || !strings.HasSuffix(strings.TrimRight(trimmed, " \t\r"), ":") {
			continue
		}
		next := lines[i+1]
		nt := strings.TrimLeft(next, " ")
		if len(next)-len(nt) == keyCol && strings.HasPrefix(nt, "- ") {
			return true
		}
	}
	return false
}

// compactSequences removes the two spaces yaml.v3 puts before the items of
// a block sequence that is the value of a mapping key.
func compactSequences(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	type frame struct{ keyCol int }
	var stack []frame
	var out strings.Builder
	out.Grow(len(b))
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		ind := len(l) - len(trimmed)
		if strings.TrimSpace(l) != "" {
			for len(stack) > 0 && ind <= stack[len(stack)-1].keyCol {
				stack = stack[:len(stack)-1]
			}
		}
		shift := 2 * len(stack)
		if shift > ind {
			shift = ind
		}
		out.WriteString(l[shift:])
		// A key with no inline value whose next line is a "- " item two
		// columns further in opens a sequence to compact.
		body := strings.TrimRight(trimmed, "\n")
		keyCol := ind
		for strings.HasPrefix(body, "- ") {
			body, keyCol = body[2:], keyCol+2
		}
		if i+1 < len(lines) && strings.HasSuffix(body, ":") && !strings.HasPrefix(body, "#") {
			next := lines[i+1]
			nt := strings.TrimLeft(next, " ")
			if len(next)-len(nt) == keyCol+2 && strings.HasPrefix(nt, "- ") {
				stack = append(stack, frame{keyCol: keyCol})
			}
		}
	}
	return []byte(out.String())
}

// pointer splits an RFC 6901 JSON pointer.
func pointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("JSON pointer %q does not start with /", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

func mapGet(m *yaml.Node, key string) (int, *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i, m.Content[i+1]
		}
	}
	return -1, nil
}

// applyOp applies one patch operation to the yaml.v3 node tree, creating
// missing intermediate mappings (a lenient reading of RFC 6902, which
// requires them to exist).
func applyOp(root *yaml.Node, op PatchOp) error {
	toks, err := pointer(op.Path)
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		return fmt.Errorf("%s on the document root is not supported", op.Op)
	}
	parent := root
	for _, t := range toks[:len(toks)-1] {
		switch parent.Kind {
		case yaml.MappingNode:
			_, v := mapGet(parent, t)
			if v == nil {
				if op.Op == "remove" {
					return nil
				}
				v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, v)
			}
			parent = v
		case yaml.SequenceNode:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(parent.Content) {
				if op.Op == "remove" {
					return nil
				}
				return fmt.Errorf("path %s: no element %s", op.Path, t)
			}
			parent = parent.Content[i]
		default:
			return fmt.Errorf("path %s: %s is not a container", op.Path, t)
		}
	}
	last := toks[len(toks)-1]
	var val *yaml.Node
	if op.Op != "remove" {
		val = &yaml.Node{}
		if err := val.Encode(op.Value); err != nil {
			return fmt.Errorf("path %s: encode value: %w", op.Path, err)
		}
	}
	switch parent.Kind {
	case yaml.MappingNode:
		i, cur := mapGet(parent, last)
		switch op.Op {
		case "remove":
			if i >= 0 {
				parent.Content = append(parent.Content[:i], parent.Content[i+2:]...)
			}
		case "add", "replace":
			switch {
			case cur == nil:
				parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}, val)
			case op.Op == "add" && cur.Kind == yaml.MappingNode && val.Kind == yaml.MappingNode:
				merge(cur, val)
			default:
				keepComments(val, cur)
				parent.Content[i+1] = val
			}
		default:
			return fmt.Errorf("unsupported op %q", op.Op)
		}
	case yaml.SequenceNode:
		if last == "-" && op.Op == "add" {
			parent.Content = append(parent.Content, val)
			return nil
		}
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i > len(parent.Content) {
			if op.Op == "remove" {
				return nil
			}
			return fmt.Errorf("path %s: bad index %s", op.Path, last)
		}
		switch op.Op {
		case "remove":
			if i < len(parent.Content) {
				parent.Content = append(parent.Content[:i], parent.Content[i+1:]...)
			}
		case "add":
			parent.Content = append(parent.Content[:i], append([]*yaml.Node{val}, parent.Content[i:]...)...)
		case "replace":
			if i == len(parent.Content) {
				return fmt.Errorf("path %s: no element %d", op.Path, i)
			}
			keepComments(val, parent.Content[i])
			parent.Content[i] = val
		default:
			return fmt.Errorf("unsupported op %q", op.Op)
		}
	default:
		return fmt.Errorf("path %s: parent is not a container", op.Path)
	}
	return nil
}

// merge adds src's keys to dst, recursively for mappings on both sides;
// dst's existing scalar values give way to src's.
func merge(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j, cur := mapGet(dst, k.Value)
		switch {
		case cur == nil:
			dst.Content = append(dst.Content, k, v)
		case cur.Kind == yaml.MappingNode && v.Kind == yaml.MappingNode:
			merge(cur, v)
		default:
			keepComments(v, cur)
			dst.Content[j+1] = v
		}
	}
}

// keepComments carries the comments of a replaced node onto its
// replacement.
func keepComments(dst, src *yaml.Node) {
	if dst.HeadComment == "" {
		dst.HeadComment = src.HeadComment
	}
	if dst.LineComment == "" {
		dst.LineComment = src.LineComment
	}
	if dst.FootComment == "" {
		dst.FootComment = src.FootComment
	}
}

// fixable are the controls whose failures carry a patch that makes the
// object pass (TestFixableControls checks each against a failing object,
// and that no other control offers one).
var fixable = map[string]bool{
	"BW-K8S-0001": true, "BW-K8S-0002": true, "BW-K8S-0003": true, "BW-K8S-0004": true, "BW-K8S-0005": true,
	"BW-K8S-0006": true, "BW-K8S-0007": true, "BW-K8S-0008": true, "BW-K8S-0009": true, "BW-K8S-0010": true,
	"BW-K8S-0011": true, "BW-K8S-0014": true,
}

// Fixable reports whether the workload control id has an automatic fix.
func Fixable(id string) bool { return fixable[id] }

// FixableControls lists the controls with an automatic fix, sorted.
func FixableControls() []string {
	out := make([]string, 0, len(fixable))
	for id := range fixable {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// PatchJSON applies the patches (each computed against the original
// object, as Fix applies them: an "add" of an object onto an object
// merges, a "remove" of a path already gone is a no-op) to the JSON object
// obj and returns the patched object's JSON.
func PatchJSON(obj []byte, patches ...[]PatchOp) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(obj, &root); err != nil {
		return nil, fmt.Errorf("patch: decode the object: %w", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("patch: the object is not a JSON object")
	}
	for _, ops := range patches {
		for _, op := range ops {
			if err := applyOp(root.Content[0], op); err != nil {
				return nil, fmt.Errorf("patch: %w", err)
			}
		}
	}
	var v any
	if err := root.Content[0].Decode(&v); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("patch: encode: %w", err)
	}
	return out, nil
}
