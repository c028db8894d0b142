package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-cmp/cmp"
	"github.com/package-url/packageurl-go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// compileSchema loads a JSON schema and the files it references from
// testdata/schemas (copied from npm packages; see testdata/README.md), with
// format assertions on, so "uri", "date-time" and "iri-reference" are
// checked too.
func compileSchema(t *testing.T, main string, refs map[string]string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	add := func(url, file string) {
		f, err := os.Open(filepath.Join("testdata", "schemas", file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	mainURL := "file:///schemas/" + main
	add(mainURL, main)
	for url, file := range refs {
		add(url, file)
	}
	sch, err := c.Compile(mainURL)
	if err != nil {
		t.Fatalf("compile %s: %v", main, err)
	}
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, out []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("output does not validate against the schema:\n%v", err)
	}
}

// The SARIF schema is the 2.1.0 (rtm.5, the final OASIS text) schema shipped
// in the npm package @microsoft/jest-sarif.
func sarifSchemaFor(t *testing.T) *jsonschema.Schema {
	return compileSchema(t, "sarif-2.1.0-rtm.5.json", nil)
}

// The CycloneDX 1.6 schema and its two referenced schemas come from the npm
// package @cyclonedx/cyclonedx-library (res/schema).
func cdxSchemaFor(t *testing.T) *jsonschema.Schema {
	return compileSchema(t, "bom-1.6.SNAPSHOT.schema.json", map[string]string{
		"http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json":     "spdx.SNAPSHOT.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json": "jsf-0.82.SNAPSHOT.schema.json",
	})
}

func TestSchemasRejectBrokenDocuments(t *testing.T) {
	// A schema check that accepts anything proves nothing.
	res := loadResult(t)
	sarif := render(t, res, FormatSARIF, Options{})
	broken := bytes.Replace(sarif, []byte(`"level": "error"`), []byte(`"level": "fatal"`), 1)
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(broken))
	if err := sarifSchemaFor(t).Validate(inst); err == nil {
		t.Error("SARIF schema accepted level \"fatal\"")
	}
	bom := render(t, res, FormatCycloneDX, Options{})
	broken = bytes.Replace(bom, []byte(`"type": "library"`), []byte(`"type": "gadget"`), 1)
	inst, _ = jsonschema.UnmarshalJSON(bytes.NewReader(broken))
	if err := cdxSchemaFor(t).Validate(inst); err == nil {
		t.Error("CycloneDX schema accepted component type \"gadget\"")
	}
	spdxDoc := render(t, res, FormatSPDX, Options{})
	broken = bytes.Replace(spdxDoc, []byte(`"referenceCategory": "PACKAGE-MANAGER"`), []byte(`"referenceCategory": "APP-STORE"`), 1)
	inst, _ = jsonschema.UnmarshalJSON(bytes.NewReader(broken))
	if err := spdxSchemaFor(t).Validate(inst); err == nil {
		t.Error("SPDX schema accepted reference category \"APP-STORE\"")
	}
}

func TestSARIF(t *testing.T) {
	res := loadResult(t)
	out := render(t, res, FormatSARIF, Options{})
	validate(t, sarifSchemaFor(t), out)

	// Strict decode: the output has exactly the fields our types declare.
	var log sarifLog
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("version %q, %d runs", log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	if len(run.Results) != len(res.Findings) {
		t.Errorf("%d results for %d findings", len(run.Results), len(res.Findings))
	}
	ids := map[string]bool{}
	for _, f := range res.Findings {
		ids[f.Vulnerability.ID] = true
	}
	if len(run.Tool.Driver.Rules) != len(ids) {
		t.Errorf("%d rules for %d vulnerability IDs", len(run.Tool.Driver.Rules), len(ids))
	}
	for _, r := range run.Results {
		rule := run.Tool.Driver.Rules[r.RuleIndex]
		if rule.ID != r.RuleID {
			t.Errorf("result %s: ruleIndex points at %s", r.RuleID, rule.ID)
		}
		if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %s: no file location", r.RuleID)
		}
		if !strings.Contains(r.Message.Text, res.Target.Digest) {
			t.Errorf("result %s: message does not name the image digest: %q", r.RuleID, r.Message.Text)
		}
	}
	for _, rule := range run.Tool.Driver.Rules {
		var v *vulndb.Vulnerability
		for _, f := range res.Findings {
			if f.Vulnerability.ID == rule.ID {
				v = f.Vulnerability
			}
		}
		ss := rule.Properties.SecuritySeverity
		if v.Severity == vulndb.SeverityUnknown {
			if ss != "" {
				t.Errorf("%s: unknown severity has security-severity %q", rule.ID, ss)
			}
			continue
		}
		score, err := strconv.ParseFloat(ss, 64)
		if err != nil {
			t.Errorf("%s: security-severity %q: %v", rule.ID, ss, err)
			continue
		}
		// GitHub's band must agree with the severity Bulwark reports.
		if got := vulndb.SeverityFromScore(score); got != v.Severity {
			t.Errorf("%s: security-severity %s is %s, finding is %s", rule.ID, ss, got, v.Severity)
		}
		if c := primaryCVSS(v); c != nil && vulndb.SeverityFromScore(c.Score) == v.Severity && ss != formatScore(c.Score) {
			t.Errorf("%s: security-severity %s, want the CVSS score %v", rule.ID, ss, c.Score)
		}
		if rule.HelpURI == "" || rule.Help.Text == "" || rule.Help.Markdown == "" {
			t.Errorf("%s: rule without help", rule.ID)
		}
		if v.KEV != nil && !slices.Contains(rule.Properties.Tags, "known-exploited") {
			t.Errorf("%s: KEV vulnerability not tagged", rule.ID)
		}
	}
}

func TestArtifactURI(t *testing.T) {
	cases := map[[2]string]string{
		{"usr/lib/a b.jar", ""}:   "usr/lib/a%20b.jar",
		{"/etc/x", ""}:            "etc/x",
		{"", "app.cdx.json"}:      "app.cdx.json",
		{"", "-"}:                 ".",
		{"c:weird/path", ""}:      "./c:weird/path",
		{"a/%2e%2e/b?x#y", ""}:    "a/%252e%252e/b%3Fx%23y",
		{"", "/tmp/sbom.spdx.js"}: "tmp/sbom.spdx.js",
	}
	for in, want := range cases {
		if got := artifactURI(in[0], in[1]); got != want {
			t.Errorf("artifactURI(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

func TestCycloneDX(t *testing.T) {
	res := loadResult(t)
	out := render(t, res, FormatCycloneDX, Options{})
	validate(t, cdxSchemaFor(t), out)

	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 {
		t.Errorf("specVersion %v", bom.SpecVersion)
	}
	root := bom.Metadata.Component
	if root.Type != cdx.ComponentTypeContainer || root.Version != res.Target.Digest {
		t.Errorf("root component %+v", root)
	}
	rp, err := packageurl.FromString(root.PackageURL)
	if err != nil {
		t.Fatalf("root purl %q: %v", root.PackageURL, err)
	}
	q := rp.Qualifiers.Map()
	if rp.Type != "oci" || rp.Name != "api" || rp.Version != res.Target.Digest ||
		q["repository_url"] != "localhost:5000/shop/api" || q["tag"] != "1.4.2" || q["arch"] != "amd64" {
		t.Errorf("root purl %q", root.PackageURL)
	}

	refs := map[string]cdx.Component{}
	var purls []string
	for _, c := range *bom.Components {
		if _, dup := refs[c.BOMRef]; dup {
			t.Errorf("duplicate bom-ref %q", c.BOMRef)
		}
		refs[c.BOMRef] = c
		if c.Type == cdx.ComponentTypeOS {
			if c.Name != res.OS.ID || c.Version != res.OS.VersionID {
				t.Errorf("OS component %s %s", c.Name, c.Version)
			}
			continue
		}
		purls = append(purls, c.PackageURL)
	}
	var want []string
	for _, p := range res.Packages {
		want = append(want, p.PURL)
	}
	if diff := cmp.Diff(want, purls); diff != "" {
		t.Errorf("component PURLs (-want +got):\n%s", diff)
	}
	// Properties carry what PURLs cannot: location, layer, OS ownership.
	for i, p := range res.Packages {
		c := refs[bomRefs(res.Packages)[i]]
		props := map[string]string{}
		for _, pr := range *c.Properties {
			props[pr.Name] = pr.Value
		}
		if props[PropLocation] != p.Location || props[PropLayer] != p.Layer || props[PropOSPackage] != p.OSPackage {
			t.Errorf("%s: properties %v", p.Name, props)
		}
	}

	vulns := map[string]cdx.Vulnerability{}
	for _, v := range *bom.Vulnerabilities {
		vulns[v.ID] = v
		for _, a := range *v.Affects {
			if _, ok := refs[a.Ref]; !ok {
				t.Errorf("%s affects unknown bom-ref %q", v.ID, a.Ref)
			}
		}
	}
	for _, f := range res.Findings {
		v, ok := vulns[f.Vulnerability.ID]
		if !ok {
			t.Errorf("finding %s missing from vulnerabilities", f.Vulnerability.ID)
			continue
		}
		if len(f.FixedVersions) > 0 && !strings.Contains(v.Recommendation, f.FixedVersions[0]) {
			t.Errorf("%s: recommendation %q lacks fixed version %s", v.ID, v.Recommendation, f.FixedVersions[0])
		}
		for _, c := range f.Vulnerability.CVSS {
			found := false
			for _, r := range *v.Ratings {
				if r.Vector == c.Vector && r.Score != nil && *r.Score == c.Score {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: CVSS %s not among ratings", v.ID, c.Vector)
			}
		}
		kev := false
		for _, p := range *v.Properties {
			kev = kev || p.Name == "bulwark:kev" && p.Value == "true"
		}
		if kev != (f.Vulnerability.KEV != nil) {
			t.Errorf("%s: KEV property %v, want %v", v.ID, kev, f.Vulnerability.KEV != nil)
		}
	}
	for _, f := range res.Suppressed {
		if _, ok := vulns[f.Vulnerability.ID]; ok && !hasFinding(res.Findings, f.Vulnerability.ID) {
			t.Errorf("suppressed %s listed as a vulnerability", f.Vulnerability.ID)
		}
	}
}

func hasFinding(fs []scan.Finding, id string) bool {
	for _, f := range fs {
		if f.Vulnerability.ID == id {
			return true
		}
	}
	return false
}

func TestBOMRefsUnique(t *testing.T) {
	res := loadResult(t)
	pkgs := append(res.Packages, res.Packages[3], res.Packages[3])
	pkgs[len(pkgs)-1].Location = "other/place"
	pkgs = append(pkgs, pkgs[0])
	pkgs[len(pkgs)-1].PURL = ""
	refs := bomRefs(pkgs)
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[r] || r == "" {
			t.Errorf("bom-ref %q not unique", r)
		}
		seen[r] = true
	}
}

// The SPDX 2.3 JSON schema is the spdx-spec one as shipped in the Go module
// github.com/anchore/syft v1.57.1 (schema/spdx-json/spdx-schema-2.3.json).
func spdxSchemaFor(t *testing.T) *jsonschema.Schema {
	return compileSchema(t, "spdx-schema-2.3.json", nil)
}

func TestSPDX(t *testing.T) {
	res := loadResult(t)
	out := render(t, res, FormatSPDX, Options{})
	validate(t, spdxSchemaFor(t), out)
	doc, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("spdxlib.ValidateDocument: %v", err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != spdxTargetID {
		t.Errorf("described packages %v, %v", described, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "2026-08-24T09:15:07Z" {
		t.Errorf("document header %s %s %s", doc.SPDXVersion, doc.DataLicense, doc.CreationInfo.Created)
	}
	var purls []string
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		if ids[string(p.PackageSPDXIdentifier)] {
			t.Errorf("duplicate SPDXID %s", p.PackageSPDXIdentifier)
		}
		ids[string(p.PackageSPDXIdentifier)] = true
		if p.PrimaryPackagePurpose != "LIBRARY" {
			continue
		}
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" && r.Category == "PACKAGE-MANAGER" {
				purls = append(purls, r.Locator)
			}
		}
	}
	var want []string
	for _, p := range res.Packages {
		want = append(want, p.PURL)
	}
	if diff := cmp.Diff(want, purls); diff != "" {
		t.Errorf("package PURLs (-want +got):\n%s", diff)
	}
	contains := 0
	for _, r := range doc.Relationships {
		if r.Relationship == "CONTAINS" {
			contains++
			if !ids[string(r.RefB.ElementRefID)] {
				t.Errorf("CONTAINS points at unknown %s", r.RefB.ElementRefID)
			}
		}
	}
	if contains != len(res.Packages)+1 { // + the OS
		t.Errorf("%d CONTAINS relationships, want %d", contains, len(res.Packages)+1)
	}
}
