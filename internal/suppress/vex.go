package suppress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxVEXSize bounds one OpenVEX document.
const MaxVEXSize = 64 << 20

// OpenVEX statuses (https://github.com/openvex/spec).
const (
	StatusNotAffected        = "not_affected"
	StatusAffected           = "affected"
	StatusFixed              = "fixed"
	StatusUnderInvestigation = "under_investigation"
)

var justifications = map[string]bool{
	"component_not_present":                             true,
	"vulnerable_code_not_present":                       true,
	"vulnerable_code_not_in_execute_path":               true,
	"vulnerable_code_cannot_be_controlled_by_adversary": true,
	"inline_mitigations_already_exist":                  true,
}

// VEXDocument is a parsed OpenVEX document.
type VEXDocument struct {
	// Source names the file in suppression records and warnings.
	Source     string
	ID         string
	Author     string
	Timestamp  time.Time
	Statements []VEXStatement
	// Warnings are statements that can never apply (no product).
	Warnings []string
}

// VEXStatement is one statement: a status of one vulnerability in some
// products.
type VEXStatement struct {
	Vulnerability string
	Aliases       []string
	Products      []VEXProduct
	Status        string
	Justification string
	Impact        string
	// Timestamp is the statement's own, else the document's.
	Timestamp time.Time
}

// VEXProduct identifies a product: an image (pkg:oci PURL, a digest, or a
// sha-256 hash) or a package (PURL), with optional subcomponents that narrow
// an image statement to some of its packages.
type VEXProduct struct {
	ID            string
	PURL          string
	SHA256        string
	Subcomponents []VEXProduct
}

// The JSON layout, v0.2.0 and the earlier v0.0.x (where vulnerability,
// products and subcomponents were plain strings).
type vexJSON struct {
	Context    string          `json:"@context"`
	ID         string          `json:"@id"`
	Author     string          `json:"author"`
	Timestamp  *time.Time      `json:"timestamp"`
	Statements []vexStatements `json:"statements"`
}

type vexStatements struct {
	Vulnerability   vexVulnerability `json:"vulnerability"`
	Products        []vexComponent   `json:"products"`
	Status          string           `json:"status"`
	Justification   string           `json:"justification"`
	ImpactStatement string           `json:"impact_statement"`
	Timestamp       *time.Time       `json:"timestamp"`
	LastUpdated     *time.Time       `json:"last_updated"`
}

type vexVulnerability struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases"`
}

func (v *vexVulnerability) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v.Name = s
		return nil
	}
	type plain vexVulnerability
	return json.Unmarshal(b, (*plain)(v))
}

type vexComponent struct {
	ID          string            `json:"@id"`
	Identifiers map[string]string `json:"identifiers"`
	Hashes      map[string]string `json:"hashes"`
	Subs        []vexComponent    `json:"subcomponents"`
}

func (c *vexComponent) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		c.ID = s
		return nil
	}
	type plain vexComponent
	return json.Unmarshal(b, (*plain)(c))
}

// ParseOpenVEX reads an OpenVEX JSON document. Statements the
// specification calls invalid are errors, not skipped: a VEX file that
// silently suppressed nothing (or too much) would mislead the gate.
func ParseOpenVEX(source string, data []byte) (*VEXDocument, error) {
	if len(data) > MaxVEXSize {
		return nil, fmt.Errorf("VEX document %s: %w: larger than %d bytes", source, ErrInvalid, MaxVEXSize)
	}
	var raw vexJSON
	if err := json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &raw); err != nil {
		return nil, fmt.Errorf("VEX document %s: %w: %v", source, ErrInvalid, err)
	}
	if !strings.HasPrefix(raw.Context, "https://openvex.dev/ns") {
		return nil, fmt.Errorf("VEX document %s: %w: @context %q is not OpenVEX (https://openvex.dev/ns...)", source, ErrInvalid, raw.Context)
	}
	doc := &VEXDocument{Source: source, ID: raw.ID, Author: raw.Author}
	if raw.Timestamp != nil {
		doc.Timestamp = raw.Timestamp.UTC()
	}
	for i, s := range raw.Statements {
		where := fmt.Sprintf("VEX document %s: statement %d", source, i+1)
		st := VEXStatement{
			Vulnerability: strings.TrimSpace(s.Vulnerability.Name),
			Aliases:       s.Vulnerability.Aliases,
			Status:        s.Status,
			Justification: s.Justification,
			Impact:        strings.TrimSpace(s.ImpactStatement),
			Timestamp:     doc.Timestamp,
		}
		if s.Timestamp != nil {
			st.Timestamp = s.Timestamp.UTC()
		}
		if s.LastUpdated != nil && s.LastUpdated.After(st.Timestamp) {
			st.Timestamp = s.LastUpdated.UTC()
		}
		if st.Vulnerability == "" {
			return nil, fmt.Errorf("%s: %w: no vulnerability name", where, ErrInvalid)
		}
		switch st.Status {
		case StatusNotAffected:
			if st.Justification == "" && st.Impact == "" {
				return nil, fmt.Errorf("%s (%s): %w: not_affected needs a justification or an impact_statement", where, st.Vulnerability, ErrInvalid)
			}
		case StatusAffected, StatusFixed, StatusUnderInvestigation:
		default:
			return nil, fmt.Errorf("%s (%s): %w: status %q (want not_affected, affected, fixed or under_investigation)", where, st.Vulnerability, ErrInvalid, st.Status)
		}
		if st.Justification != "" && !justifications[st.Justification] {
			return nil, fmt.Errorf("%s (%s): %w: unknown justification %q", where, st.Vulnerability, ErrInvalid, st.Justification)
		}
		for _, p := range s.Products {
			st.Products = append(st.Products, productOf(p))
		}
		if len(st.Products) == 0 {
			doc.Warnings = append(doc.Warnings, fmt.Sprintf("%s (%s) names no product and applies to nothing", where, st.Vulnerability))
		}
		doc.Statements = append(doc.Statements, st)
	}
	return doc, nil
}

func productOf(c vexComponent) VEXProduct {
	p := VEXProduct{ID: strings.TrimSpace(c.ID), PURL: strings.TrimSpace(c.Identifiers["purl"])}
	if p.PURL == "" && strings.HasPrefix(p.ID, "pkg:") {
		p.PURL = p.ID
	}
	for k, v := range c.Hashes {
		if strings.EqualFold(k, "sha-256") || strings.EqualFold(k, "sha256") {
			p.SHA256 = strings.ToLower(strings.TrimPrefix(v, "sha256:"))
		}
	}
	for _, s := range c.Subs {
		p.Subcomponents = append(p.Subcomponents, productOf(s))
	}
	return p
}
