package rules

import (
	"fmt"
	"strings"
)

// The condition language, as Falco's:
//
//	expr    = or
//	or      = and { "or" and }
//	and     = not { "and" not }
//	not     = "not" not | primary
//	primary = "(" expr ")" | check | macro
//	check   = FIELD ( "exists" | binop VALUE | listop "(" [ VALUE { "," VALUE } ] ")" )
//	binop   = "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "icontains"
//	        | "startswith" | "endswith" | "glob" | "pmatch"
//	listop  = "in" | "intersects" | "pmatch"
//
// FIELD may carry an argument in brackets (proc.aname[2]); VALUE is a bare
// word or a quoted string; an unquoted VALUE in a list naming a list is
// replaced by that list's items. An identifier alone is a macro reference.

// maxConditionDepth bounds nesting so hostile input cannot blow the stack.
const maxConditionDepth = 200

// maxConditionLen bounds a condition after macro expansion is not needed:
// macros are compiled by reference, so only the source text is bounded.
const maxConditionLen = 1 << 20

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString // quoted
	tLParen
	tRParen
	tComma
	tOp // = == != < <= > >=
)

type token struct {
	kind tokKind
	text string
	pos  int // byte offset in the condition
}

// SyntaxError is a condition that does not parse; Pos is a byte offset.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("col %d: %s", e.Pos+1, e.Msg) }

func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v', '(', ')', ',', '"', '\'', '=', '<', '>', '!':
		return false
	}
	return true
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '=' || c == '<' || c == '>' || c == '!':
			j := i + 1
			if j < len(s) && s[j] == '=' {
				j++
			}
			op := s[i:j]
			if op == "!" {
				return nil, &SyntaxError{i, "unexpected '!' (use != or not)"}
			}
			toks = append(toks, token{tOp, op, i})
			i = j
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '\\' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j += 2
					continue
				}
				if s[j] == c {
					closed = true
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return nil, &SyntaxError{i, "unterminated string"}
			}
			toks = append(toks, token{tString, b.String(), i})
			i = j
		default:
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, token{tWord, s[i:j], i})
			i = j
		}
	}
	toks = append(toks, token{tEOF, "", len(s)})
	return toks, nil
}

// AST.
type node interface{ position() int }

type andNode struct {
	pos   int
	terms []node
}
type orNode struct {
	pos   int
	terms []node
}
type notNode struct {
	pos int
	x   node
}
type macroRef struct {
	pos  int
	name string
}

// value is one operand: quoted values are never list references.
type value struct {
	text   string
	quoted bool
}

type checkNode struct {
	pos    int
	field  string
	arg    string // inside brackets, "" if none
	hasArg bool
	op     string
	values []value
	isList bool // operand was a parenthesised list
}

func (n *andNode) position() int   { return n.pos }
func (n *orNode) position() int    { return n.pos }
func (n *notNode) position() int   { return n.pos }
func (n *macroRef) position() int  { return n.pos }
func (n *checkNode) position() int { return n.pos }

var wordOps = map[string]bool{
	"contains": true, "icontains": true, "startswith": true, "endswith": true, "glob": true,
	"pmatch": true, "in": true, "intersects": true, "exists": true,
	// Known to Falco but not supported here: parsed so the rule is reported, not misread.
	"bcontains": true, "bstartswith": true, "iglob": true, "regex": true,
}

type parser struct {
	toks  []token
	i     int
	depth int
}

// parseCondition parses a condition into its AST.
func parseCondition(s string) (node, error) {
	if len(s) > maxConditionLen {
		return nil, &SyntaxError{0, "condition too long"}
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nil, &SyntaxError{0, "empty condition"}
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, &SyntaxError{t.pos, fmt.Sprintf("unexpected %q", t.text)}
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}
func (p *parser) isKeyword(kw string) bool {
	t := p.peek()
	return t.kind == tWord && t.text == kw
}

func (p *parser) parseOr() (node, error) {
	pos := p.peek().pos
	x, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	terms := []node{x}
	for p.isKeyword("or") {
		p.next()
		y, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	if len(terms) == 1 {
		return x, nil
	}
	return &orNode{pos, terms}, nil
}

func (p *parser) parseAnd() (node, error) {
	pos := p.peek().pos
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	terms := []node{x}
	for p.isKeyword("and") {
		p.next()
		y, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		terms = append(terms, y)
	}
	if len(terms) == 1 {
		return x, nil
	}
	return &andNode{pos, terms}, nil
}

func (p *parser) parseNot() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxConditionDepth {
		return nil, &SyntaxError{p.peek().pos, "condition nested too deeply"}
	}
	if p.isKeyword("not") {
		t := p.next()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &notNode{t.pos, x}, nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (node, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, &SyntaxError{c.pos, fmt.Sprintf("expected ')', found %q", c.text)}
		}
		return x, nil
	case tWord:
		if t.text == "and" || t.text == "or" {
			return nil, &SyntaxError{t.pos, fmt.Sprintf("unexpected %q", t.text)}
		}
		nt := p.peek()
		if nt.kind == tOp || (nt.kind == tWord && wordOps[nt.text]) {
			return p.parseCheck(t)
		}
		if !isIdent(t.text) {
			return nil, &SyntaxError{t.pos, fmt.Sprintf("%q is neither a macro name nor followed by an operator", t.text)}
		}
		return &macroRef{t.pos, t.text}, nil
	case tEOF:
		return nil, &SyntaxError{t.pos, "unexpected end of condition"}
	default:
		return nil, &SyntaxError{t.pos, fmt.Sprintf("unexpected %q", t.text)}
	}
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (p *parser) parseCheck(ft token) (node, error) {
	n := &checkNode{pos: ft.pos, field: ft.text}
	if i := strings.IndexByte(ft.text, '['); i >= 0 {
		if !strings.HasSuffix(ft.text, "]") {
			return nil, &SyntaxError{ft.pos, fmt.Sprintf("malformed field argument in %q", ft.text)}
		}
		n.field, n.arg, n.hasArg = ft.text[:i], ft.text[i+1:len(ft.text)-1], true
	}
	if !isFieldName(n.field) {
		return nil, &SyntaxError{ft.pos, fmt.Sprintf("%q is not a field name", ft.text)}
	}
	op := p.next()
	n.op = op.text
	if n.op == "exists" {
		return n, nil
	}
	if p.peek().kind == tLParen && (n.op == "in" || n.op == "intersects" || n.op == "pmatch") {
		p.next()
		n.isList = true
		for p.peek().kind != tRParen {
			v := p.next()
			switch v.kind {
			case tWord:
				n.values = append(n.values, value{text: v.text})
			case tString:
				n.values = append(n.values, value{text: v.text, quoted: true})
			case tEOF:
				return nil, &SyntaxError{v.pos, "unterminated list"}
			default:
				return nil, &SyntaxError{v.pos, fmt.Sprintf("unexpected %q in list", v.text)}
			}
			if c := p.peek(); c.kind == tComma {
				p.next()
			} else if c.kind != tRParen {
				return nil, &SyntaxError{c.pos, fmt.Sprintf("expected ',' or ')' in list, found %q", c.text)}
			}
		}
		p.next()
		return n, nil
	}
	if n.op == "in" || n.op == "intersects" {
		return nil, &SyntaxError{p.peek().pos, fmt.Sprintf("%s needs a parenthesised list", n.op)}
	}
	v := p.next()
	switch {
	case v.kind == tWord:
		n.values = []value{{text: v.text}}
	case v.kind == tString:
		n.values = []value{{text: v.text, quoted: true}}
	case v.kind == tOp && (v.text == "<" || v.text == ">"): // evt.dir=<
		n.values = []value{{text: v.text}}
	default:
		return nil, &SyntaxError{v.pos, fmt.Sprintf("missing value after %q", n.op)}
	}
	return n, nil
}

func isFieldName(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
