package posture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// CustomControl is an organisation's own control: a CEL expression over
// `object` that must be true for the object to pass, shaped like a
// ValidatingAdmissionPolicy validation. Load them with LoadCustomControls.
type CustomControl struct {
	Control
	Kinds    []string // kinds it applies to ("*" = every kind, custom resources included)
	program  *celeval.Program
	message  *celeval.Program // nil: a fixed message
	fixedMsg string
}

// customFile is the YAML shape of one `kind: Control` document.
type customFile struct {
	APIVersion  string `yaml:"apiVersion"`
	Kind        string `yaml:"kind"`
	ID          string `yaml:"id"`
	Title       string `yaml:"title"`
	Severity    string `yaml:"severity"`
	Rationale   string `yaml:"rationale"`
	Remediation string `yaml:"remediation"`
	Automated   *bool  `yaml:"automated"`
	Frameworks  struct {
		CIS   []string `yaml:"cis"`
		NSA   string   `yaml:"nsa"`
		PSS   string   `yaml:"pss"`
		MITRE []string `yaml:"mitre"`
	} `yaml:"frameworks"`
	Match struct {
		Kinds []string `yaml:"kinds"`
	} `yaml:"match"`
	Expression        string `yaml:"expression"`
	MessageExpression string `yaml:"messageExpression"`
	Message           string `yaml:"message"`
}

var celPos = regexp.MustCompile(`^(\d+):(\d+): `)

// LoadCustomControls reads the `kind: Control` documents of one file
// (multi-document YAML) and compiles their expressions. Every problem is an
// error naming file:line, so a broken control is found when it is loaded,
// not when a scan silently skips it.
//
//	kind: Control
//	id: ACME-0001
//	title: Deployments carry an owner label
//	severity: medium
//	frameworks: {nsa: "...", cis: ["5.7.1"]}
//	match: {kinds: [Deployment, StatefulSet]}
//	expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
//	messageExpression: "object.metadata.name + ' has no owner label'"
func LoadCustomControls(env *celeval.Env, file string, data []byte) ([]CustomControl, error) {
	if len(data) > 4<<20 {
		return nil, fmt.Errorf("load controls %s: %w: larger than 4 MiB", file, ErrTooLarge)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []CustomControl
	seen := map[string]bool{}
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("load controls %s: %w", file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		at := func(line int, format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, a...))
		}
		var cf customFile
		if err := root.Decode(&cf); err != nil {
			return nil, at(root.Line, "%v", err)
		}
		if cf.Kind != "Control" {
			return nil, at(root.Line, "kind %q, want Control", cf.Kind)
		}
		switch {
		case cf.ID == "":
			return nil, at(root.Line, "control has no id")
		case seen[cf.ID]:
			return nil, at(root.Line, "duplicate control id %s", cf.ID)
		case strings.HasPrefix(cf.ID, "BW-"):
			return nil, at(root.Line, "control id %s: the BW- prefix is Bulwark's own", cf.ID)
		case cf.Title == "":
			return nil, at(root.Line, "control %s has no title", cf.ID)
		case len(cf.Match.Kinds) == 0:
			return nil, at(root.Line, "control %s has no match.kinds", cf.ID)
		}
		seen[cf.ID] = true
		sev, err := vulndb.ParseSeverity(cf.Severity)
		if err != nil || sev == vulndb.SeverityUnknown {
			return nil, at(valueLine(root, "severity"), "control %s: severity %q, want low, medium, high or critical", cf.ID, cf.Severity)
		}
		cc := CustomControl{Kinds: cf.Match.Kinds, Control: Control{ID: cf.ID, Title: cf.Title, Severity: sev,
			Rationale: cf.Rationale, Remediation: cf.Remediation, CIS: cf.Frameworks.CIS, NSA: cf.Frameworks.NSA,
			PSS: cf.Frameworks.PSS, MITRE: cf.Frameworks.MITRE, Automated: cf.Automated == nil || *cf.Automated,
			Custom: cf.Expression}}
		if cc.program, err = env.Compile(cf.Expression); err != nil {
			return nil, celError(file, root, "expression", cf.ID, err)
		}
		if cf.MessageExpression != "" {
			if cc.message, err = env.CompileMessage(cf.MessageExpression); err != nil {
				return nil, celError(file, root, "messageExpression", cf.ID, err)
			}
		}
		if cf.Message == "" {
			cf.Message = cf.Title
		}
		cc.fixedMsg = cf.Message
		out = append(out, cc)
	}
	return out, nil
}

// valueLine is the line of key's value in mapping m (m's line if absent).
func valueLine(m *yaml.Node, key string) int {
	if v := valueNode(m, key); v != nil {
		return v.Line
	}
	return m.Line
}

func valueNode(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// celError turns celeval's "line:col: message" (relative to the expression)
// into file:line of the YAML file.
func celError(file string, root *yaml.Node, key, id string, err error) error {
	v := valueNode(root, key)
	line := root.Line
	if v != nil {
		line = v.Line
		if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			line++ // a block scalar's text starts below its indicator
		}
	}
	msg := strings.TrimPrefix(err.Error(), celeval.ErrCompile.Error()+": ")
	if m := celPos.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		line += n - 1
		msg = "column " + m[2] + ": " + msg[len(m[0]):]
	}
	return fmt.Errorf("%s:%d: control %s: %s: %w: %s", file, line, id, key, celeval.ErrCompile, msg)
}

func (c *CustomControl) matches(kind string) bool {
	for _, k := range c.Kinds {
		if k == "*" || k == kind {
			return true
		}
	}
	return false
}

// evaluate runs the control on one object (JSON-shaped). An evaluation
// error (a missing field without has(), the cost budget) is a skipped
// verdict that carries the error, never a silent pass.
func (c *CustomControl) evaluate(ctx context.Context, obj any) outcome {
	vars := celeval.Vars{Object: obj}
	ok, err := c.program.Eval(ctx, vars)
	if err != nil {
		return skip("expression error: " + err.Error())
	}
	if ok {
		return pass()
	}
	if c.message != nil {
		if msg, err := c.message.EvalString(ctx, vars); err == nil {
			return fail(msg, nil)
		}
	}
	return fail(c.fixedMsg, nil)
}
