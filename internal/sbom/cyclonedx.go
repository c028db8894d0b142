package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Property names other tools write that carry what a PURL cannot. Bulwark's
// own names are the ones internal/report writes.
const (
	propLocation       = "bulwark:location"
	propLocationDetail = "bulwark:locationDetail"
	propLayer          = "bulwark:layer"
	propOSPackage      = "bulwark:osPackage"
	propPlatform       = "bulwark:platform"
	propEcosystem      = "bulwark:ecosystem"
	propSourceName     = "bulwark:sourceName"
	propSourceVersion  = "bulwark:sourceVersion"
	propIndirect       = "bulwark:indirect"
	propDev            = "bulwark:dev"
	propCodename       = "bulwark:codename"

	trivySrcName    = "aquasecurity:trivy:SrcName"
	trivySrcVersion = "aquasecurity:trivy:SrcVersion"
	trivySrcRelease = "aquasecurity:trivy:SrcRelease"
	trivySrcEpoch   = "aquasecurity:trivy:SrcEpoch"
	trivyFilePath   = "aquasecurity:trivy:FilePath"
	trivyLayer      = "aquasecurity:trivy:LayerDiffID"
	syftLocation    = "syft:location:0:path"
	npmPackagePath  = "cdx:npm:package:path" // @cyclonedx/cyclonedx-npm
)

// errNotCycloneDX: JSON that mentions bomFormat but is not CycloneDX.
var errNotCycloneDX = errors.New("not CycloneDX")

func decodeCycloneDXJSON(data []byte, lim Limits) (*Decoded, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		if errors.Is(err, cdx.ErrInvalidSpecVersion) {
			return nil, fmt.Errorf("decode CycloneDX JSON: %w (want 1.2 to 1.7): %v", ErrUnsupportedVersion, err)
		}
		return nil, fmt.Errorf("decode CycloneDX JSON: %w", err)
	}
	if bom.BOMFormat != cdx.BOMFormat {
		return nil, fmt.Errorf("decode SBOM: %w: %w (bomFormat %q)", ErrUnknownFormat, errNotCycloneDX, bom.BOMFormat)
	}
	spec := bom.SpecVersion.String()
	if !supportedCycloneDX(spec, true) {
		return nil, fmt.Errorf("decode CycloneDX JSON: %w %q (want 1.2 to 1.7)", ErrUnsupportedVersion, spec)
	}
	d, err := fromBOM(&bom, FormatCycloneDXJSON, spec, lim)
	if err != nil {
		return nil, fmt.Errorf("decode CycloneDX JSON: %w", err)
	}
	return d, nil
}

func decodeCycloneDXXML(data []byte, spec string, lim Limits) (*Decoded, error) {
	if !supportedCycloneDX(spec, false) {
		return nil, fmt.Errorf("decode CycloneDX XML: %w %q (want 1.0 to 1.7)", ErrUnsupportedVersion, spec)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatXML).Decode(&bom); err != nil {
		return nil, fmt.Errorf("decode CycloneDX XML: %w", err)
	}
	d, err := fromBOM(&bom, FormatCycloneDXXML, spec, lim)
	if err != nil {
		return nil, fmt.Errorf("decode CycloneDX XML: %w", err)
	}
	return d, nil
}

// supportedCycloneDX: JSON exists from 1.2 on, XML from 1.0; cyclonedx-go
// reads up to 1.7.
func supportedCycloneDX(spec string, isJSON bool) bool {
	switch spec {
	case "1.2", "1.3", "1.4", "1.5", "1.6", "1.7":
		return true
	case "1.0", "1.1":
		return !isJSON
	}
	return false
}

func fromBOM(bom *cdx.BOM, f Format, spec string, lim Limits) (*Decoded, error) {
	c := newCollector(f, spec, ExtractorCycloneDX, lim)
	if m := bom.Metadata; m != nil && m.Component != nil {
		mc := m.Component
		c.d.Subject = &Subject{Name: joinGroup(mc.Group, mc.Name), Version: mc.Version, PURL: mc.PackageURL, Type: string(mc.Type)}
		if mc.Type == cdx.ComponentTypeOS {
			c.d.OS = osFromComponent(mc)
		}
	}
	if bom.Components == nil {
		return c.finish(), nil
	}
	// Components nest (a container holding libraries, a library holding
	// shaded ones); walk them iteratively, depth already bounded.
	stack := []*[]cdx.Component{bom.Components}
	for len(stack) > 0 {
		list := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for i := range *list {
			comp := &(*list)[i]
			if err := c.count(); err != nil {
				return nil, err
			}
			if comp.Components != nil {
				stack = append(stack, comp.Components)
			}
			if comp.Type == cdx.ComponentTypeOS {
				if c.d.OS == nil {
					c.d.OS = osFromComponent(comp)
				}
				continue
			}
			c.add(joinGroup(comp.Group, comp.Name), comp.Version, strings.TrimSpace(comp.PackageURL), componentInfoOf(comp))
		}
	}
	return c.finish(), nil
}

func joinGroup(group, name string) string {
	if group == "" {
		return name
	}
	return group + "/" + name
}

func osFromComponent(comp *cdx.Component) *inventory.OS {
	o := &inventory.OS{
		ID:         strings.ToLower(strings.TrimSpace(comp.Name)),
		VersionID:  strings.TrimSpace(comp.Version),
		PrettyName: comp.Description,
		CPEName:    comp.CPE,
	}
	props := properties(comp)
	o.Codename = props[propCodename]
	o.Location = props[propLocation]
	return o
}

func properties(comp *cdx.Component) map[string]string {
	m := map[string]string{}
	if comp.Properties == nil {
		return m
	}
	for _, p := range *comp.Properties {
		if _, dup := m[p.Name]; !dup { // the first of repeated names
			m[p.Name] = p.Value
		}
	}
	return m
}

func componentInfoOf(comp *cdx.Component) componentInfo {
	props := properties(comp)
	ci := componentInfo{
		location:       firstOf(props[propLocation], props[trivyFilePath], props[syftLocation], props[npmPackagePath]),
		locationDetail: props[propLocationDetail],
		layer:          firstOf(props[propLayer], props[trivyLayer]),
		osPackage:      props[propOSPackage],
		platform:       props[propPlatform],
		sourceName:     firstOf(props[propSourceName], props[trivySrcName]),
		sourceVersion:  props[propSourceVersion],
		ecosystem:      props[propEcosystem],
		indirect:       props[propIndirect] == "true",
		dev:            props[propDev] == "true",
	}
	if ci.sourceVersion == "" && props[trivySrcVersion] != "" {
		// Trivy splits the source version as RPM does.
		v := props[trivySrcVersion]
		if r := props[trivySrcRelease]; r != "" {
			v += "-" + r
		}
		if e := props[trivySrcEpoch]; e != "" && e != "0" {
			v = e + ":" + v
		}
		ci.sourceVersion = v
	}
	if ci.location == "" && comp.Evidence != nil && comp.Evidence.Occurrences != nil && len(*comp.Evidence.Occurrences) > 0 {
		loc := (*comp.Evidence.Occurrences)[0].Location
		ci.location, ci.locationDetail, _ = strings.Cut(loc, "!")
	}
	ci.location = strings.TrimLeft(ci.location, "/")
	if comp.Licenses != nil {
		for _, l := range *comp.Licenses {
			switch {
			case l.Expression != "":
				ci.licenses = append(ci.licenses, l.Expression)
			case l.License != nil && l.License.ID != "":
				ci.licenses = append(ci.licenses, l.License.ID)
			case l.License != nil && l.License.Name != "":
				ci.licenses = append(ci.licenses, l.License.Name)
			}
		}
	}
	return ci
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
