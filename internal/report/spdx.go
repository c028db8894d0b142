package report

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"

	"github.com/bulwark-security/bulwark/internal/scan"
)

const (
	spdxNoAssertion = "NOASSERTION"
	spdxTargetID    = "Target"
	spdxOSID        = "OperatingSystem"
)

// writeSPDX writes an SPDX 2.3 JSON document: the target as the described
// package, the OS and every package it CONTAINS, each with its PURL as a
// PACKAGE-MANAGER external reference. SPDX 2.3 has no place for
// vulnerabilities beyond free-text annotations; use cyclonedx for those.
func writeSPDX(buf *bytes.Buffer, res *scan.Result) error {
	created := res.FinishedAt
	if created.IsZero() {
		created = res.StartedAt
	}
	docName := res.Target.Name
	if docName == "" {
		docName = "bulwark-scan"
	}
	doc := &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: "DOCUMENT",
		DocumentName:   docName,
		// The namespace must be a unique URI per document; the pattern is
		// the one the SPDX specification suggests.
		DocumentNamespace: "https://spdx.org/spdxdocs/" + spdxSlug(toolName(res)) + "-" + spdxSlug(docName) + "-" + documentUUID(res).String(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: toolName(res) + "-" + orUnknown(res.Tool.Version)}},
			Created:  created.UTC().Format(time.RFC3339),
		},
	}

	target := &spdx.Package{
		PackageName:             docName,
		PackageSPDXIdentifier:   spdxTargetID,
		PackageDownloadLocation: spdxNoAssertion,
		FilesAnalyzed:           false,
		PrimaryPackagePurpose:   "OTHER",
	}
	switch res.Target.Kind {
	case "image":
		target.PrimaryPackagePurpose = "CONTAINER"
		target.PackageVersion = res.Target.Digest
		if alg, h, ok := strings.Cut(res.Target.Digest, ":"); ok && alg == "sha256" {
			target.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: h}}
		}
		if p := ociPURL(&res.Target); p != "" {
			target.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: p}}
		}
	case "fs":
		target.PrimaryPackagePurpose = "SOURCE"
	}
	doc.Packages = append(doc.Packages, target)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA:         common.MakeDocElementID("", "DOCUMENT"),
		RefB:         common.MakeDocElementID("", spdxTargetID),
		Relationship: common.TypeRelationshipDescribe,
	})
	contains := func(id common.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", spdxTargetID),
			RefB:         common.MakeDocElementID("", string(id)),
			Relationship: common.TypeRelationshipContains,
		})
	}

	if o := res.OS; o != nil {
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             o.ID,
			PackageSPDXIdentifier:   spdxOSID,
			PackageVersion:          o.VersionID,
			PackageDownloadLocation: spdxNoAssertion,
			FilesAnalyzed:           false,
			// The SPDX 2.3 JSON schema spells it with "_" (the tag-value
			// specification text with "-").
			PrimaryPackagePurpose: "OPERATING_SYSTEM",
			PackageDescription:    o.PrettyName,
			PackageSourceInfo:     sourceInfo(o.Location, ""),
		})
		contains(spdxOSID)
	}

	for i := range res.Packages {
		p := &res.Packages[i]
		id := common.ElementID(fmt.Sprintf("Package-%d-%s", i+1, spdxSlug(p.Type+"-"+p.Name)))
		sp := &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageDownloadLocation: spdxNoAssertion,
			FilesAnalyzed:           false,
			PrimaryPackagePurpose:   "LIBRARY",
			PackageSourceInfo:       sourceInfo(fullLocation(p), p.Layer),
			// Declared licenses are free text from package metadata, not
			// always valid SPDX expressions: keep them as a comment.
			PackageLicenseConcluded: spdxNoAssertion,
			PackageLicenseDeclared:  spdxNoAssertion,
			PackageCopyrightText:    spdxNoAssertion,
		}
		if len(p.Licenses) > 0 {
			sp.PackageLicenseComments = "declared: " + strings.Join(p.Licenses, ", ")
		}
		var comment []string
		if p.OSPackage != "" {
			comment = append(comment, "installed by the OS package "+p.OSPackage)
		}
		if p.SourceName != "" {
			src := p.SourceName
			if p.SourceVersion != "" {
				src += " " + p.SourceVersion
			}
			comment = append(comment, "source package "+src)
		}
		if len(comment) > 0 {
			sp.PackageComment = strings.Join(comment, "; ")
		}
		if p.PURL != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: p.PURL}}
		}
		doc.Packages = append(doc.Packages, sp)
		contains(id)
	}

	return spdxjson.Write(doc, buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
}

func sourceInfo(location, layer string) string {
	if location == "" {
		return ""
	}
	s := "found in " + location
	if layer != "" {
		s += " (layer " + layer + ")"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// spdxSlug keeps the characters SPDX allows in identifiers (letters,
// digits, "." and "-") and replaces the rest with "-".
func spdxSlug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.'
		if !ok {
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		dash = false
		b.WriteRune(r)
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 64 {
		out = out[:64]
	}
	if out == "" {
		return "x"
	}
	return out
}
