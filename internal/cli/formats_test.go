package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// TestFormats renders the same scan in every format and parses each back
// with an independent reader (the format's reference library where there is
// one), checking it carries the same packages and findings as the JSON.
func TestFormats(t *testing.T) {
	base := baseline(t)
	purls := map[string]bool{}
	for _, p := range base.Packages {
		purls[p.PURL] = true
	}
	ids := map[string]bool{}
	for _, f := range base.Findings {
		ids[f.Vulnerability.ID] = true
	}

	t.Run("table", func(t *testing.T) {
		r := scanDemo(t, runOpts{}, "--format", "table").want(t, ExitOK)
		if strings.Contains(r.stdout, "\x1b[") {
			t.Error("ANSI escape codes in a table written to a non-terminal")
		}
		for _, want := range []string{"CRITICAL", "HIGH", "MEDIUM", "GO-2022-1059", "NSWG-ECO-495", "4.17.19"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("table lacks %q", want)
			}
		}
		// Grouped by severity, highest first, each group headed by its name.
		c, h, m := strings.Index(r.stdout, "\nCRITICAL ("), strings.Index(r.stdout, "\nHIGH ("), strings.Index(r.stdout, "\nMEDIUM (")
		if c < 0 || c >= h || h >= m {
			t.Errorf("severity groups missing or out of order: CRITICAL at %d, HIGH at %d, MEDIUM at %d", c, h, m)
		}
	})

	t.Run("default is json off a terminal", func(t *testing.T) {
		r := runWith(t, runOpts{}, "scan", "image", "--db-dir", demoDB(t), demoImage(t)).want(t, ExitOK)
		if res := parseResult(t, r.stdout); len(res.Findings) != len(base.Findings) {
			t.Errorf("%d findings, want %d", len(res.Findings), len(base.Findings))
		}
	})

	t.Run("sarif", func(t *testing.T) {
		r := scanDemo(t, runOpts{}, "--format", "sarif").want(t, ExitOK)
		var log struct {
			Version string `json:"version"`
			Runs    []struct {
				Tool struct {
					Driver struct {
						Name  string `json:"name"`
						Rules []struct {
							ID string `json:"id"`
						} `json:"rules"`
					} `json:"driver"`
				} `json:"tool"`
				Results []struct {
					RuleID  string `json:"ruleId"`
					Level   string `json:"level"`
					Message struct {
						Text string `json:"text"`
					} `json:"message"`
					Locations []struct {
						PhysicalLocation struct {
							ArtifactLocation struct {
								URI string `json:"uri"`
							} `json:"artifactLocation"`
						} `json:"physicalLocation"`
					} `json:"locations"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &log); err != nil {
			t.Fatalf("parse SARIF: %v", err)
		}
		if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name == "" {
			t.Fatalf("SARIF version %q, %d runs", log.Version, len(log.Runs))
		}
		run := log.Runs[0]
		rules := map[string]bool{}
		for _, rule := range run.Tool.Driver.Rules {
			rules[rule.ID] = true
		}
		got := map[string]bool{}
		for _, res := range run.Results {
			got[res.RuleID] = true
			if !rules[res.RuleID] {
				t.Errorf("result %s has no rule", res.RuleID)
			}
			if res.Level == "" || res.Message.Text == "" || len(res.Locations) == 0 || res.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
				t.Errorf("result %s: level %q, message %q, locations %+v", res.RuleID, res.Level, res.Message.Text, res.Locations)
			}
		}
		if len(run.Results) != len(base.Findings) {
			t.Errorf("%d SARIF results, %d findings", len(run.Results), len(base.Findings))
		}
		for id := range ids {
			if !got[id] {
				t.Errorf("finding %s missing from SARIF", id)
			}
		}
	})

	t.Run("cyclonedx", func(t *testing.T) {
		r := scanDemo(t, runOpts{}, "--format", "cyclonedx").want(t, ExitOK)
		var bom cdx.BOM
		if err := cdx.NewBOMDecoder(strings.NewReader(r.stdout), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
			t.Fatalf("decode CycloneDX: %v", err)
		}
		if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != cdx.BOMFormat {
			t.Errorf("bomFormat %q, specVersion %v, want CycloneDX 1.6", bom.BOMFormat, bom.SpecVersion)
		}
		refs := map[string]bool{}
		gotPURLs := map[string]bool{}
		if bom.Components == nil {
			t.Fatal("no components")
		}
		var osComp bool
		for _, c := range *bom.Components {
			refs[c.BOMRef] = true
			if c.PackageURL != "" {
				gotPURLs[c.PackageURL] = true
			}
			osComp = osComp || (c.Type == cdx.ComponentTypeOS && c.Name == "debian")
		}
		if !osComp {
			t.Error("no operating-system component for Debian")
		}
		for p := range purls {
			if !gotPURLs[p] {
				t.Errorf("package %s missing from the components", p)
			}
		}
		if bom.Vulnerabilities == nil {
			t.Fatal("no vulnerabilities section")
		}
		gotIDs := map[string]bool{}
		for _, v := range *bom.Vulnerabilities {
			gotIDs[v.ID] = true
			if v.Affects == nil || len(*v.Affects) == 0 {
				t.Errorf("vulnerability %s affects nothing", v.ID)
				continue
			}
			for _, a := range *v.Affects {
				if !refs[a.Ref] {
					t.Errorf("vulnerability %s affects %q, which is no component", v.ID, a.Ref)
				}
			}
		}
		for id := range ids {
			if !gotIDs[id] {
				t.Errorf("finding %s missing from the vulnerabilities", id)
			}
		}
	})

	t.Run("spdx", func(t *testing.T) {
		r := scanDemo(t, runOpts{}, "--format", "spdx").want(t, ExitOK)
		doc, err := spdxjson.Read(strings.NewReader(r.stdout))
		if err != nil {
			t.Fatalf("read SPDX: %v", err)
		}
		if !strings.HasPrefix(doc.SPDXVersion, "SPDX-2.") || doc.DocumentNamespace == "" {
			t.Errorf("SPDX version %q, namespace %q", doc.SPDXVersion, doc.DocumentNamespace)
		}
		gotPURLs := map[string]bool{}
		for _, p := range doc.Packages {
			for _, ref := range p.PackageExternalReferences {
				if ref.RefType == "purl" {
					gotPURLs[ref.Locator] = true
				}
			}
		}
		for p := range purls {
			if !gotPURLs[p] {
				t.Errorf("package %s missing from the SPDX packages", p)
			}
		}
	})

	t.Run("output file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		r := scanDemo(t, runOpts{}, "-o", out).want(t, ExitOK)
		if r.stdout != "" {
			t.Errorf("report also written to stdout (%d bytes)", len(r.stdout))
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var res scan.Result
		if err := json.Unmarshal(data, &res); err != nil || len(res.Findings) != len(base.Findings) {
			t.Errorf("report file: %v, %d findings, want %d", err, len(res.Findings), len(base.Findings))
		}
	})

	t.Run("unknown format", func(t *testing.T) {
		r := scanDemo(t, runOpts{}, "--format", "xml").want(t, ExitError)
		if !strings.Contains(r.stderr, "xml") || r.stdout != "" {
			t.Errorf("stderr %q, stdout %d bytes", r.stderr, len(r.stdout))
		}
	})
}
