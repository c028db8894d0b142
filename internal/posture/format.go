package posture

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Formats Write accepts.
var Formats = []string{"table", "json", "sarif", "junit", "html"}

// Write renders rep in format.
func Write(w io.Writer, rep *Report, format string) error {
	switch format {
	case "table", "":
		return writeTable(w, rep)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "sarif":
		return writeSARIF(w, rep)
	case "junit":
		return writeJUnit(w, rep)
	case "html":
		return writeHTML(w, rep)
	}
	return fmt.Errorf("write report: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// failures returns the failed results, most severe first.
func (r *Report) failures() []Result {
	var out []Result
	for _, x := range r.Results {
		if x.Status == StatusFail {
			out = append(out, x)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity > out[j].Severity })
	return out
}

func (r *Report) control(id string) *Control {
	for i := range r.Controls {
		if r.Controls[i].ID == id {
			return &r.Controls[i]
		}
	}
	return nil
}

func writeTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fails := rep.failures()
	fmt.Fprintf(tw, "SEVERITY\tCONTROL\tOBJECT\tMESSAGE\n")
	for _, f := range fails {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(f.Severity.String()), f.Control, rep.Objects[f.Object].String(), f.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d objects, %d failed checks, %d skipped objects, %d errors\n", len(rep.Objects), len(fails), len(rep.Skipped), len(rep.Errors))
	if len(rep.Unavailable) > 0 {
		kinds := make([]string, 0, len(rep.Unavailable))
		for k := range rep.Unavailable {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "\nNOT EVALUATED (the controls needing these kinds were skipped)\n")
		for _, k := range kinds {
			fmt.Fprintf(w, "  %s: %s\n", k, rep.Unavailable[k])
		}
	}
	fmt.Fprintf(w, "\nSCORES (%s)\n", ScoreFormula)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, group := range [][]Score{rep.Frameworks, rep.Namespaces} {
		for _, s := range group {
			fmt.Fprintf(tw, "  %s\t%.1f\t%d passed, %d failed, %d excepted, %d skipped\n", s.Name, s.Score, s.Passed, s.Failed, s.Excepted, s.Skipped)
		}
		fmt.Fprintf(tw, "\t\t\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s (%s doc %d): %s\n", s.Object.String(), s.Object.Source, s.Object.Doc, s.Reason)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error %s\n", e.Error())
	}
	for _, x := range rep.ExpiredExceptions {
		fmt.Fprintf(w, "expired exception %s (%s) on %s\n", x.Control, x.Reason, x.Expires.Format("2006-01-02"))
	}
	return nil
}

func writeSARIF(w io.Writer, rep *Report) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string         `json:"id"`
		Name             string         `json:"name"`
		ShortDescription msg            `json:"shortDescription"`
		FullDescription  msg            `json:"fullDescription"`
		Help             msg            `json:"help"`
		Properties       map[string]any `json:"properties"`
	}
	type result struct {
		RuleID    string         `json:"ruleId"`
		RuleIndex int            `json:"ruleIndex"`
		Level     string         `json:"level"`
		Message   msg            `json:"message"`
		Locations []any          `json:"locations,omitempty"`
		Props     map[string]any `json:"properties,omitempty"`
	}
	idx := map[string]int{}
	rules := make([]rule, 0, len(rep.Controls))
	for i, c := range rep.Controls {
		idx[c.ID] = i
		tags := append([]string{"security", "kubernetes"}, c.Frameworks()...)
		rules = append(rules, rule{ID: c.ID, Name: c.ID, ShortDescription: msg{c.Title}, FullDescription: msg{c.Rationale},
			Help: msg{c.Remediation}, Properties: map[string]any{"tags": tags, "security-severity": c.Severity.BandScore(),
				"cis": c.CIS, "nsa": c.NSA, "pss": c.PSS, "mitre": c.MITRE}})
	}
	results := []result{}
	for _, f := range rep.failures() {
		o := rep.Objects[f.Object]
		res := result{RuleID: f.Control, RuleIndex: idx[f.Control], Level: f.Severity.SARIFLevel(),
			Message: msg{o.String() + ": " + f.Message}}
		if o.Source != "" && o.Source != "-" {
			loc := map[string]any{"artifactLocation": map[string]any{"uri": o.Source}}
			if o.Line > 0 {
				loc["region"] = map[string]any{"startLine": o.Line}
			}
			res.Locations = []any{map[string]any{"physicalLocation": loc, "logicalLocations": []any{map[string]any{"name": o.String(), "kind": "object"}}}}
		}
		if len(f.Patch) > 0 {
			res.Props = map[string]any{"patch": f.Patch}
		}
		results = append(results, res)
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool":    map[string]any{"driver": map[string]any{"name": "bulwark-posture", "version": rep.Catalogue, "informationUri": "https://github.com/bulwark-security/bulwark", "rules": rules}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func writeJUnit(w io.Writer, rep *Report) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type tc struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
	}
	type suite struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Skipped  int    `xml:"skipped,attr"`
		Cases    []tc   `xml:"testcase"`
	}
	suites := map[string]*suite{}
	var order []string
	for _, r := range rep.Results {
		s := suites[r.Control]
		if s == nil {
			title := r.Control
			if c := rep.control(r.Control); c != nil {
				title += " " + c.Title
			}
			s = &suite{Name: title}
			suites[r.Control] = s
			order = append(order, r.Control)
		}
		c := tc{Name: rep.Objects[r.Object].String(), Classname: r.Control}
		switch r.Status {
		case StatusFail:
			c.Failure = &failure{Message: r.Message, Type: r.Severity.String(), Text: r.Message}
			s.Failures++
		case StatusSkipped, StatusExcepted:
			m := r.Message
			if r.Status == StatusExcepted {
				m = "exception: " + r.Exception
			}
			c.Skipped = &skipped{Message: m}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	out := struct {
		XMLName xml.Name `xml:"testsuites"`
		Name    string   `xml:"name,attr"`
		Suites  []*suite `xml:"testsuite"`
	}{Name: "bulwark posture"}
	for _, k := range order {
		out.Suites = append(out.Suites, suites[k])
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

var htmlPage = template.Must(template.New("posture").Funcs(template.FuncMap{
	"obj":  func(rep *Report, i int) string { return rep.Objects[i].String() },
	"ctl":  func(rep *Report, id string) *Control { return rep.control(id) },
	"sev":  func(s vulndb.Severity) string { return strings.ToUpper(s.String()) },
	"join": strings.Join,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Bulwark posture report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}table{border-collapse:collapse;margin:1rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}th{background:#f6f8fa}
.CRITICAL{color:#fff;background:#8b0000}.HIGH{color:#fff;background:#cf222e}.MEDIUM{background:#fb8f44}.LOW{background:#eaeef2}
code{font-size:.85rem}
</style></head><body>
<h1>Bulwark posture report</h1>
<p>Catalogue {{.Catalogue}}, Pod Security Standards {{.PSSVersion}}: {{len .Objects}} objects, {{len .Skipped}} skipped, {{len .Errors}} errors.</p>
<h2>Scores by framework</h2>
<table><tr><th>Framework</th><th>Score</th><th>Passed</th><th>Failed</th><th>Excepted</th><th>Skipped</th></tr>
{{range .Frameworks}}<tr><td>{{.Name}}</td><td>{{printf "%.1f" .Score}}</td><td>{{.Passed}}</td><td>{{.Failed}}</td><td>{{.Excepted}}</td><td>{{.Skipped}}</td></tr>{{end}}</table>
<h2>Scores by namespace</h2>
<table><tr><th>Namespace</th><th>Score</th><th>Passed</th><th>Failed</th><th>Excepted</th><th>Skipped</th></tr>
{{range .Namespaces}}<tr><td>{{.Name}}</td><td>{{printf "%.1f" .Score}}</td><td>{{.Passed}}</td><td>{{.Failed}}</td><td>{{.Excepted}}</td><td>{{.Skipped}}</td></tr>{{end}}</table>
<h2>Failures</h2>
<table><tr><th>Severity</th><th>Control</th><th>Object</th><th>Message</th><th>Remediation</th></tr>
{{$rep := .Report}}{{range .Fails}}{{$c := ctl $rep .Control}}<tr><td class="{{sev .Severity}}">{{sev .Severity}}</td><td>{{.Control}}<br>{{$c.Title}}</td><td>{{obj $rep .Object}}</td><td>{{.Message}}</td><td>{{$c.Remediation}}</td></tr>
{{end}}</table>
{{if .Skipped}}<h2>Skipped objects</h2><ul>{{range .Skipped}}<li>{{.Object.Kind}}/{{.Object.Name}} ({{.Object.Source}}): {{.Reason}}</li>{{end}}</ul>{{end}}
{{if .Errors}}<h2>Errors</h2><ul>{{range .Errors}}<li>{{.Error}}</li>{{end}}</ul>{{end}}
<p><small>{{.Formula}}</small></p>
</body></html>
`))

func writeHTML(w io.Writer, rep *Report) error {
	return htmlPage.Execute(w, struct {
		*Report
		Fails   []Result
		Formula string
	}{rep, rep.failures(), ScoreFormula})
}
