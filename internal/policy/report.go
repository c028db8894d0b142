package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Formats lists the report formats of WriteReport.
var Formats = []string{"table", "json", "sarif"}

// ReportItem is the decision on one object of a pipeline run.
type ReportItem struct {
	Source    string   `json:"source"`
	Line      int      `json:"line,omitempty"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Decision  Decision `json:"decision"`
	// Fixes are what the mutating webhook would fix before judging
	// (`bulwark policy test --apply-fixes`): the decision is the fixed
	// object's.
	Fixes []Fix `json:"fixes,omitempty"`
}

// Report is a pipeline run: every object judged, and the inputs that could
// not be read or judged.
type Report struct {
	PolicyVersion string       `json:"policyVersion"`
	Items         []ReportItem `json:"items"`
	Skipped       []string     `json:"skipped,omitempty"`
	// Notes say where the verdicts rest on an assumption (a namespace
	// whose labels were not known).
	Notes  []string `json:"notes,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Denied counts the objects the webhook would refuse.
func (r *Report) Denied() int {
	n := 0
	for i := range r.Items {
		if !r.Items[i].Decision.Allowed {
			n++
		}
	}
	return n
}

func (it *ReportItem) what() string {
	if it.Namespace == "" {
		return it.Kind + "/" + it.Name
	}
	return it.Kind + "/" + it.Namespace + "/" + it.Name
}

// WriteReport writes rep as table, json or sarif (SARIF 2.1.0, one result
// per violation, located at the object's document).
func WriteReport(w io.Writer, rep *Report, format string) error {
	switch format {
	case "", "table":
		return writeTable(w, rep)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "sarif":
		return writeSARIF(w, rep)
	}
	return fmt.Errorf("report format %q: want %s", format, strings.Join(Formats, ", "))
}

func writeTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tVERDICT\tPOLICY/RULE\tCONTAINER\tFINDING\tMESSAGE")
	for i := range rep.Items {
		it := &rep.Items[i]
		loc := it.what()
		if len(it.Decision.Violations) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\n", loc, it.Decision.Verdict)
			continue
		}
		for _, v := range it.Decision.Violations {
			fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\n", loc, verdictOf(v.Mode), v.Policy, v.Rule, v.Container, v.Finding, oneLine(v.Message, 100))
		}
		for _, v := range it.Decision.Exempted {
			fmt.Fprintf(tw, "%s\texempted\t%s/%s\t%s\t%s\t%s\n", loc, v.Policy, v.Rule, v.Container, v.Finding, oneLine(v.Exemption, 100))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d object(s): %d denied; policies %s\n", len(rep.Items), rep.Denied(), rep.PolicyVersion)
	for i := range rep.Items {
		it := &rep.Items[i]
		if !it.Decision.Allowed {
			fmt.Fprintf(w, "\n%s:%d: %s\n", it.Source, it.Line, it.Decision.Message(it.what()))
		}
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, s := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", s)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}

func verdictOf(m Mode) string {
	switch m {
	case ModeDeny:
		return "deny"
	case ModeWarn:
		return "warn"
	}
	return "audit"
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

func sarifLevel(m Mode) string {
	switch m {
	case ModeDeny:
		return "error"
	case ModeWarn:
		return "warning"
	}
	return "note"
}

// securitySeverity is the severity's band score, 5.0 (medium) when the
// policy rule gave none.
func securitySeverity(s vulndb.Severity) string {
	if b := s.BandScore(); b != "" {
		return b
	}
	return "5.0"
}

func writeSARIF(w io.Writer, rep *Report) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID         string         `json:"id"`
		Name       string         `json:"name"`
		Short      msg            `json:"shortDescription"`
		Help       msg            `json:"help"`
		Properties map[string]any `json:"properties"`
	}
	type loc struct {
		Physical struct {
			Artifact struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
			Region *struct {
				StartLine int `json:"startLine"`
			} `json:"region,omitempty"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID    string `json:"ruleId"`
		Level     string `json:"level"`
		Message   msg    `json:"message"`
		Locations []loc  `json:"locations"`
	}
	rules := map[string]*rule{}
	var results []result
	for i := range rep.Items {
		it := &rep.Items[i]
		for _, v := range it.Decision.Violations {
			id := v.Policy + "/" + v.Rule
			if v.Finding != "" {
				id += "/" + v.Finding
			}
			if rules[id] == nil {
				rules[id] = &rule{ID: id, Name: v.Rule, Short: msg{v.Policy + ": " + v.Rule + " " + v.Finding}, Help: msg{v.Fix},
					Properties: map[string]any{"security-severity": securitySeverity(v.Severity), "tags": []string{"security", "kubernetes", v.Rule}}}
			}
			var l loc
			l.Physical.Artifact.URI = it.Source
			if it.Line > 0 {
				l.Physical.Region = &struct {
					StartLine int `json:"startLine"`
				}{it.Line}
			}
			results = append(results, result{RuleID: id, Level: sarifLevel(v.Mode), Message: msg{it.what() + ": " + v.Line()}, Locations: []loc{l}})
		}
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rl := make([]*rule, 0, len(ids))
	for _, id := range ids {
		rl = append(rl, rules[id])
	}
	if results == nil {
		results = []result{}
	}
	run := map[string]any{
		"tool":    map[string]any{"driver": map[string]any{"name": "bulwark-policy", "informationUri": "https://github.com/bulwark-security/bulwark", "rules": rl}},
		"results": results,
	}
	if len(rep.Notes) > 0 {
		notes := make([]any, len(rep.Notes))
		for i, n := range rep.Notes {
			notes[i] = map[string]any{"level": "warning", "message": msg{n}}
		}
		run["invocations"] = []any{map[string]any{"executionSuccessful": true, "toolExecutionNotifications": notes}}
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs":    []any{run},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
