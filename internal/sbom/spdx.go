package sbom

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/tagvalue"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

var spdxVersionRE = regexp.MustCompile(`"spdxVersion"\s*:\s*"([^"]{0,32})"`)

func supportedSPDX(v string) bool {
	switch v {
	case "SPDX-2.1", "SPDX-2.2", "SPDX-2.3":
		return true
	}
	return false
}

func decodeSPDXJSON(data []byte, lim Limits) (*Decoded, error) {
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		// tools-golang's own words ("unsupported SDPX version", sic).
		if strings.Contains(err.Error(), "unsupported") && strings.Contains(err.Error(), "version") {
			return nil, fmt.Errorf("decode SPDX JSON: %w (want SPDX-2.1 to SPDX-2.3): %v", ErrUnsupportedVersion, err)
		}
		return nil, fmt.Errorf("decode SPDX JSON: %w", err)
	}
	// tools-golang converts 2.1 and 2.2 to its 2.3 model, version included;
	// report the version the document declares.
	version := doc.SPDXVersion
	if m := spdxVersionRE.FindSubmatch(data); m != nil {
		version = string(m[1])
	}
	if !supportedSPDX(version) {
		return nil, fmt.Errorf("decode SPDX JSON: %w %q (want SPDX-2.1 to SPDX-2.3)", ErrUnsupportedVersion, version)
	}
	d, err := fromSPDX(doc, FormatSPDXJSON, version, lim)
	if err != nil {
		return nil, fmt.Errorf("decode SPDX JSON: %w", err)
	}
	return d, nil
}

func decodeSPDXTagValue(data []byte, lim Limits) (*Decoded, error) {
	doc, err := tagvalue.Read(bytes.NewReader(data))
	if err != nil {
		if strings.Contains(err.Error(), "unsupported SPDX version") {
			return nil, fmt.Errorf("decode SPDX tag-value: %w: %v", ErrUnsupportedVersion, err)
		}
		return nil, fmt.Errorf("decode SPDX tag-value: %w", err)
	}
	d, err := fromSPDX(doc, FormatSPDXTagValue, doc.SPDXVersion, lim)
	if err != nil {
		return nil, fmt.Errorf("decode SPDX tag-value: %w", err)
	}
	return d, nil
}

// fromSPDX reads packages from an SPDX document (tools-golang converts
// 2.1 and 2.2 documents to its 2.3 model). The package the document
// DESCRIBES is its subject and not listed — unless it is the only package,
// as in the SBOM of a single library.
func fromSPDX(doc *spdx.Document, f Format, version string, lim Limits) (*Decoded, error) {
	c := newCollector(f, version, ExtractorSPDX, lim)

	described := map[common.ElementID]bool{}
	for _, r := range doc.Relationships {
		if r == nil {
			continue
		}
		switch strings.ToUpper(r.Relationship) {
		case common.TypeRelationshipDescribe:
			if r.RefA.ElementRefID == "DOCUMENT" {
				described[r.RefB.ElementRefID] = true
			}
		case common.TypeRelationshipDescribeBy:
			if r.RefB.ElementRefID == "DOCUMENT" {
				described[r.RefA.ElementRefID] = true
			}
		}
	}
	pkgs := make([]*spdx.Package, 0, len(doc.Packages))
	for _, p := range doc.Packages {
		if p != nil {
			pkgs = append(pkgs, p)
		}
	}
	for _, p := range pkgs {
		if err := c.count(); err != nil {
			return nil, err
		}
		purl := purlOf(p)
		// JSON writes OPERATING_SYSTEM (its schema), tag-value OPERATING-SYSTEM.
		if purpose := strings.ReplaceAll(strings.ToUpper(p.PrimaryPackagePurpose), "_", "-"); purpose == "OPERATING-SYSTEM" {
			if c.d.OS == nil {
				c.d.OS = &inventory.OS{
					ID:         strings.ToLower(strings.TrimSpace(p.PackageName)),
					VersionID:  strings.TrimSpace(p.PackageVersion),
					PrettyName: p.PackageDescription,
					Location:   strings.TrimPrefix(p.PackageSourceInfo, "found in "),
				}
			}
			continue
		}
		if described[p.PackageSPDXIdentifier] && len(pkgs) > 1 {
			if c.d.Subject == nil {
				c.d.Subject = &Subject{Name: p.PackageName, Version: p.PackageVersion, PURL: purl, Type: p.PrimaryPackagePurpose}
			}
			continue
		}
		c.add(p.PackageName, p.PackageVersion, purl, spdxInfo(p))
	}
	return c.finish(), nil
}

func purlOf(p *spdx.Package) string {
	for _, r := range p.PackageExternalReferences {
		if r != nil && strings.EqualFold(r.RefType, "purl") {
			return strings.TrimSpace(r.Locator)
		}
	}
	return ""
}

// spdxInfo reads back what internal/report writes into SPDX free-text
// fields (sourceInfo "found in LOCATION (layer DIGEST)", comment
// "installed by the OS package X; source package Y V", license comments
// "declared: A, B"), and declared license expressions of other tools.
func spdxInfo(p *spdx.Package) componentInfo {
	var ci componentInfo
	if s, ok := strings.CutPrefix(p.PackageSourceInfo, "found in "); ok {
		if loc, layer, ok := strings.Cut(s, " (layer "); ok && strings.HasSuffix(layer, ")") {
			ci.location, ci.layer = loc, strings.TrimSuffix(layer, ")")
		} else {
			ci.location = s
		}
		ci.location, ci.locationDetail, _ = strings.Cut(ci.location, "!")
	} else if p.PackageFileName != "" {
		// npm writes the package directory here ("node_modules/lodash").
		ci.location = strings.TrimLeft(p.PackageFileName, "/")
	}
	for _, part := range strings.Split(p.PackageComment, "; ") {
		if s, ok := strings.CutPrefix(part, "installed by the OS package "); ok {
			ci.osPackage = s
		}
		if s, ok := strings.CutPrefix(part, "source package "); ok {
			ci.sourceName, ci.sourceVersion, _ = strings.Cut(s, " ")
		}
	}
	if s, ok := strings.CutPrefix(p.PackageLicenseComments, "declared: "); ok {
		ci.licenses = strings.Split(s, ", ")
	} else if l := p.PackageLicenseDeclared; l != "" && l != "NOASSERTION" && l != "NONE" {
		ci.licenses = []string{l}
	}
	return ci
}
