package report

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/uuid"
	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Property names Bulwark writes into CycloneDX documents, namespaced as the
// CycloneDX property taxonomy asks. internal/sbom reads them back, so a
// Bulwark SBOM scanned later keeps layers and OS ownership.
const (
	PropLocation      = "bulwark:location"
	PropLocationIn    = "bulwark:locationDetail"
	PropLayer         = "bulwark:layer"
	PropOSPackage     = "bulwark:osPackage"
	PropEcosystem     = "bulwark:ecosystem"
	PropExtractor     = "bulwark:extractor"
	PropSourceName    = "bulwark:sourceName"
	PropSourceVersion = "bulwark:sourceVersion"
	PropIndirect      = "bulwark:indirect"
	PropDev           = "bulwark:dev"
	PropPlatform      = "bulwark:platform"
)

// bulwarkNamespace seeds the name-based UUIDs of generated documents.
var bulwarkNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte(informationURI))

// documentUUID derives a document identity from the result, so rendering
// the same result twice gives the same document while two scans (which
// differ in finish time at least) get different ones.
func documentUUID(res *scan.Result) uuid.UUID {
	key := strings.Join([]string{res.Tool.Name, res.Tool.Version, res.Target.Kind, res.Target.Name,
		res.Target.Digest, res.FinishedAt.UTC().Format(time.RFC3339Nano), strconv.Itoa(len(res.Packages)),
		strconv.Itoa(len(res.Findings))}, "\x00")
	return uuid.NewSHA1(bulwarkNamespace, []byte(key))
}

func writeCycloneDX(buf *bytes.Buffer, res *scan.Result) error {
	// Built as 1.6 directly: EncodeVersion would deep-copy the whole BOM
	// through gob to down-convert from the library's newest version, which
	// was most of the rendering time on a large image. The schema test
	// checks nothing newer than 1.6 slips in.
	bom := &cdx.BOM{
		JSONSchema:   "http://cyclonedx.org/schema/bom-1.6.schema.json",
		BOMFormat:    cdx.BOMFormat,
		SpecVersion:  cdx.SpecVersion1_6,
		SerialNumber: "urn:uuid:" + documentUUID(res).String(),
		Version:      1,
	}

	root := rootComponent(res)
	bom.Metadata = &cdx.Metadata{
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type:    cdx.ComponentTypeApplication,
			Name:    toolName(res),
			Version: res.Tool.Version,
			ExternalReferences: &[]cdx.ExternalReference{{
				Type: cdx.ERTypeWebsite,
				URL:  informationURI,
			}},
		}}},
		Component: root,
	}
	if !res.FinishedAt.IsZero() {
		bom.Metadata.Timestamp = res.FinishedAt.UTC().Format(time.RFC3339)
	}

	refs := bomRefs(res.Packages)
	var comps []cdx.Component
	dependsOn := []string{}
	if o := res.OS; o != nil {
		c := cdx.Component{
			BOMRef:      osBOMRef(o),
			Type:        cdx.ComponentTypeOS,
			Name:        o.ID,
			Version:     o.VersionID,
			Description: o.PrettyName,
			CPE:         o.CPEName,
		}
		var props []cdx.Property
		if o.Codename != "" {
			props = append(props, cdx.Property{Name: "bulwark:codename", Value: o.Codename})
		}
		if o.Location != "" {
			props = append(props, cdx.Property{Name: PropLocation, Value: o.Location})
		}
		if len(props) > 0 {
			c.Properties = &props
		}
		comps = append(comps, c)
		dependsOn = append(dependsOn, c.BOMRef)
	}
	for i := range res.Packages {
		comps = append(comps, packageComponent(&res.Packages[i], refs[i]))
		dependsOn = append(dependsOn, refs[i])
	}
	bom.Components = &comps
	// The target contains everything found in it; Bulwark does not know the
	// dependency graph between packages, so it claims no more than that.
	bom.Dependencies = &[]cdx.Dependency{{Ref: root.BOMRef, Dependencies: &dependsOn}}

	if vulns := cdxVulnerabilities(res, refs); len(vulns) > 0 {
		bom.Vulnerabilities = &vulns
	}

	enc := cdx.NewBOMEncoder(buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.Encode(bom)
}

func osBOMRef(o *inventory.OS) string {
	return "os:" + o.ID + "@" + o.VersionID
}

// rootComponent describes the scanned target: a container image (with its
// digest, as a pkg:oci PURL and a hash), a directory or an SBOM.
func rootComponent(res *scan.Result) *cdx.Component {
	t := &res.Target
	c := &cdx.Component{Name: t.Name, BOMRef: "target"}
	switch t.Kind {
	case "image":
		c.Type = cdx.ComponentTypeContainer
		c.Version = t.Digest
		if p := ociPURL(t); p != "" {
			c.PackageURL = p
			c.BOMRef = p
		}
		if alg, h, ok := strings.Cut(t.Digest, ":"); ok && alg == "sha256" {
			c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
		}
	case "sbom":
		c.Type = cdx.ComponentTypeApplication
	default:
		c.Type = cdx.ComponentTypeFile
	}
	var props []cdx.Property
	add := func(k, v string) {
		if v != "" {
			props = append(props, cdx.Property{Name: k, Value: v})
		}
	}
	add("bulwark:target:kind", t.Kind)
	add("bulwark:imageId", t.ImageID)
	add("bulwark:platform", t.Platform)
	for _, tag := range t.RepoTags {
		add("bulwark:repoTag", tag)
	}
	for _, l := range t.Layers {
		add("bulwark:layer:diffId", l.DiffID)
	}
	if len(props) > 0 {
		c.Properties = &props
	}
	return c
}

// ociPURL is the pkg:oci PURL of an image: the last path element of the
// repository as name, the manifest digest as version, the full repository
// as repository_url. Archives have no repository; their first repo tag, if
// any, stands in.
func ociPURL(t *scan.Target) string {
	if t.Digest == "" {
		return ""
	}
	refStr := t.Name
	if strings.Contains(refStr, "-archive:") || strings.HasPrefix(refStr, "oci-layout:") {
		if len(t.RepoTags) == 0 {
			return ""
		}
		refStr = t.RepoTags[0]
	}
	ref, err := name.ParseReference(refStr, name.WeakValidation)
	if err != nil {
		return ""
	}
	repo := ref.Context()
	repoName := repo.RepositoryStr()
	last := repoName[strings.LastIndex(repoName, "/")+1:]
	q := packageurl.Qualifiers{{Key: "repository_url", Value: repo.RegistryStr() + "/" + repoName}}
	if tag, ok := ref.(name.Tag); ok && tag.TagStr() != "" {
		q = append(q, packageurl.Qualifier{Key: "tag", Value: tag.TagStr()})
	}
	if _, arch, ok := strings.Cut(t.Platform, "/"); ok {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: arch})
	}
	slices.SortFunc(q, func(a, b packageurl.Qualifier) int { return strings.Compare(a.Key, b.Key) })
	return packageurl.NewPackageURL(packageurl.TypeOCI, "", strings.ToLower(last), t.Digest, q, "").ToString()
}

// bomRefs gives every package a unique, stable bom-ref: its PURL when that
// is unique, else the PURL plus its location (the same library vendored
// twice), else a counter.
func bomRefs(pkgs []inventory.Package) []string {
	count := map[string]int{}
	for i := range pkgs {
		count[pkgs[i].PURL]++
	}
	refs := make([]string, len(pkgs))
	used := map[string]bool{}
	for i := range pkgs {
		p := &pkgs[i]
		ref := p.PURL
		switch {
		case ref == "":
			ref = fmt.Sprintf("bulwark:package:%s/%s@%s", p.Type, p.Name, p.Version)
		case count[ref] > 1:
			ref += "#" + fullLocation(p)
		}
		base := ref
		for n := 2; used[ref]; n++ {
			ref = fmt.Sprintf("%s#%d", base, n)
		}
		used[ref] = true
		refs[i] = ref
	}
	return refs
}

func packageComponent(p *inventory.Package, ref string) cdx.Component {
	c := cdx.Component{
		BOMRef:     ref,
		Type:       cdx.ComponentTypeLibrary,
		Name:       p.Name,
		Version:    p.Version,
		PackageURL: p.PURL,
	}
	switch p.Type {
	case inventory.TypeMaven:
		if g, a, ok := strings.Cut(p.Name, ":"); ok {
			c.Group, c.Name = g, a
		}
	case inventory.TypeNPM:
		if strings.HasPrefix(p.Name, "@") {
			if g, a, ok := strings.Cut(p.Name, "/"); ok {
				c.Group, c.Name = g, a
			}
		}
	}
	if len(p.Licenses) > 0 {
		ls := make(cdx.Licenses, 0, len(p.Licenses))
		for _, l := range p.Licenses {
			// Declared licenses are free text ("GPL-2+", "BSD"); a name is
			// always valid where an SPDX id might not be.
			ls = append(ls, cdx.LicenseChoice{License: &cdx.License{Name: l}})
		}
		c.Licenses = &ls
	}
	var props []cdx.Property
	add := func(k, v string) {
		if v != "" {
			props = append(props, cdx.Property{Name: k, Value: v})
		}
	}
	add(PropEcosystem, p.Ecosystem)
	add(PropLocation, p.Location)
	add(PropLocationIn, p.LocationDetail)
	add(PropLayer, p.Layer)
	add(PropExtractor, p.Extractor)
	add(PropOSPackage, p.OSPackage)
	add(PropPlatform, p.Platform)
	add(PropSourceName, p.SourceName)
	add(PropSourceVersion, p.SourceVersion)
	if p.Indirect {
		add(PropIndirect, "true")
	}
	if p.Dev {
		add(PropDev, "true")
	}
	if len(props) > 0 {
		c.Properties = &props
	}
	if p.Location != "" {
		c.Evidence = &cdx.Evidence{Occurrences: &[]cdx.EvidenceOccurrence{{Location: fullLocation(p)}}}
	}
	return c
}

// cdxVulnerabilities lists each reported vulnerability once, with every
// package it affects. Suppressed findings are left out: CycloneDX has no
// state for "accepted risk", and a VEX statement is better kept in its own
// document than restated here.
func cdxVulnerabilities(res *scan.Result, refs []string) []cdx.Vulnerability {
	// Findings carry a copy of their package; find its bom-ref by index when
	// the matcher kept it, else by identity.
	refOf := func(f *scan.Finding) string {
		if i := f.Match.Package; i >= 0 && i < len(res.Packages) && samePackage(&res.Packages[i], &f.Package) {
			return refs[i]
		}
		for i := range res.Packages {
			if samePackage(&res.Packages[i], &f.Package) {
				return refs[i]
			}
		}
		return ""
	}

	type entry struct {
		v        *vulndb.Vulnerability
		findings []*scan.Finding
	}
	var order []string
	byID := map[string]*entry{}
	for _, f := range sortedFindings(res.Findings) {
		id := vulnID(f)
		e, ok := byID[id]
		if !ok {
			e = &entry{v: vulnOf(f)}
			byID[id] = e
			order = append(order, id)
		}
		e.findings = append(e.findings, f)
	}

	out := make([]cdx.Vulnerability, 0, len(order))
	for _, id := range order {
		e := byID[id]
		v := e.v
		cv := cdx.Vulnerability{
			BOMRef:      "vuln:" + id,
			ID:          id,
			Source:      &cdx.Source{Name: sourceName(id, v.Source), URL: osvURL(id)},
			Description: oneLine(v.Summary),
			Detail:      v.Details,
		}
		if !v.Published.IsZero() {
			cv.Published = v.Published.UTC().Format(time.RFC3339)
		}
		if !v.Modified.IsZero() {
			cv.Updated = v.Modified.UTC().Format(time.RFC3339)
		}
		if len(v.Aliases) > 0 {
			rs := make([]cdx.VulnerabilityReference, 0, len(v.Aliases))
			for _, a := range v.Aliases {
				rs = append(rs, cdx.VulnerabilityReference{ID: a, Source: &cdx.Source{Name: sourceName(a, ""), URL: osvURL(a)}})
			}
			cv.References = &rs
		}
		ratings := cdxRatings(v)
		cv.Ratings = &ratings
		if len(v.References) > 0 {
			adv := make([]cdx.Advisory, 0, len(v.References))
			for _, r := range v.References {
				adv = append(adv, cdx.Advisory{URL: r})
			}
			cv.Advisories = &adv
		}

		var affects []cdx.Affects
		var recs []string
		seenRef := map[string]int{}
		for _, f := range e.findings {
			ref := refOf(f)
			if ref == "" {
				continue
			}
			ver := cdx.AffectedVersions{Version: f.Package.Version, Status: cdx.VulnerabilityStatusAffected}
			if i, ok := seenRef[ref]; ok {
				rng := affects[i].Range
				if !slices.Contains(*rng, ver) {
					*rng = append(*rng, ver)
				}
				continue
			}
			seenRef[ref] = len(affects)
			affects = append(affects, cdx.Affects{Ref: ref, Range: &[]cdx.AffectedVersions{ver}})
			if len(f.FixedVersions) > 0 {
				rec := fmt.Sprintf("Upgrade %s to %s", f.Package.Name, strings.Join(f.FixedVersions, " or "))
				if !slices.Contains(recs, rec) {
					recs = append(recs, rec)
				}
			}
		}
		if len(affects) > 0 {
			cv.Affects = &affects
		}
		if len(recs) > 0 {
			cv.Recommendation = strings.Join(recs, "; ") + "."
		}

		var props []cdx.Property
		if k := v.KEV; k != nil {
			props = append(props, cdx.Property{Name: "bulwark:kev", Value: "true"})
			if k.DateAdded != "" {
				props = append(props, cdx.Property{Name: "bulwark:kev:dateAdded", Value: k.DateAdded})
			}
			if k.DueDate != "" {
				props = append(props, cdx.Property{Name: "bulwark:kev:dueDate", Value: k.DueDate})
			}
			if k.RansomwareUse != "" {
				props = append(props, cdx.Property{Name: "bulwark:kev:knownRansomwareCampaignUse", Value: k.RansomwareUse})
			}
		}
		if v.EPSS > 0 {
			props = append(props, cdx.Property{Name: "bulwark:epss", Value: strconv.FormatFloat(v.EPSS, 'f', -1, 64)})
		}
		props = append(props, cdx.Property{Name: "bulwark:severity", Value: v.Severity.String()})
		cv.Properties = &props
		out = append(out, cv)
	}
	return out
}

// fullLocation is Location with LocationDetail appended the way Java tools
// write nested archive paths ("app.ear!app.war!WEB-INF/lib/a.jar").
func fullLocation(p *inventory.Package) string {
	if p.LocationDetail == "" {
		return p.Location
	}
	return p.Location + "!" + p.LocationDetail
}

func samePackage(a, b *inventory.Package) bool {
	return a.Name == b.Name && a.Version == b.Version && a.Type == b.Type &&
		a.Location == b.Location && a.LocationDetail == b.LocationDetail && a.PURL == b.PURL
}

// cdxRatings lists every CVSS vector, each rated by its own score, and adds
// the severity Bulwark reports when no score backs it (a distribution's own
// rating, or no rating at all).
func cdxRatings(v *vulndb.Vulnerability) []cdx.VulnerabilityRating {
	var rs []cdx.VulnerabilityRating
	agrees := false
	for _, c := range v.CVSS {
		method := cdx.ScoringMethodOther
		switch c.Version {
		case "2.0":
			method = cdx.ScoringMethodCVSSv2
		case "3.0":
			method = cdx.ScoringMethodCVSSv3
		case "3.1":
			method = cdx.ScoringMethodCVSSv31
		case "4.0":
			method = cdx.ScoringMethodCVSSv4
		}
		score := c.Score
		sev := vulndb.SeverityFromScore(score)
		if sev == v.Severity {
			agrees = true
		}
		r := cdx.VulnerabilityRating{Score: &score, Severity: cdxSeverity(sev), Method: method, Vector: c.Vector}
		if c.Source != "" {
			r.Source = &cdx.Source{Name: c.Source}
		}
		rs = append(rs, r)
	}
	if !agrees {
		r := cdx.VulnerabilityRating{Severity: cdxSeverity(v.Severity), Method: cdx.ScoringMethodOther}
		if v.Source != "" {
			r.Source = &cdx.Source{Name: v.Source}
		}
		rs = append(rs, r)
	}
	return rs
}

func cdxSeverity(s vulndb.Severity) cdx.Severity {
	switch s {
	case vulndb.SeverityCritical:
		return cdx.SeverityCritical
	case vulndb.SeverityHigh:
		return cdx.SeverityHigh
	case vulndb.SeverityMedium:
		return cdx.SeverityMedium
	case vulndb.SeverityLow:
		return cdx.SeverityLow
	}
	return cdx.SeverityUnknown
}

// sourceName names the database an ID belongs to, from its prefix.
func sourceName(id, fallback string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "CVE":
		return "NVD"
	case "GHSA":
		return "GitHub Advisory Database"
	case "GO":
		return "Go Vulnerability Database"
	case "PYSEC":
		return "PyPA Advisory Database"
	case "RUSTSEC":
		return "RustSec Advisory Database"
	case "ALSA", "ALBA", "ALEA":
		return "AlmaLinux"
	case "DSA", "DLA", "DTSA":
		return "Debian Security Tracker"
	case "USN":
		return "Ubuntu Security Notices"
	}
	if fallback != "" {
		return fallback
	}
	return "OSV"
}
