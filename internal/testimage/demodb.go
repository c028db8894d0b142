package testimage

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

// VulnDBModule is the golang.org/x/vulndb module version the demo database
// is cut from (its zip holds data/osv/*.json).
const (
	VulnDBModule  = "golang.org/x/vulndb"
	VulnDBVersion = "v0.0.0-20261105234957-e22db6528018"
)

// Demo database files, in the formats of their sources.
const (
	DemoGoVulnDBZip = "golang-vulndb.zip"
	DemoNodejsZip   = "nodejs-security-wg.zip"
	DemoKEVJSON     = "cisa-kev.json"
	DemoCVE5Zip     = "cisa-vulnrichment-cve5.zip"
)

// Source file names in the shared vulnerability data directory.
const (
	srcNodejsZip = "nodejs-security-wg.zip"
	srcKEV       = "cisa-kev.json"
	srcCVE5Zip   = "cisa-vulnrichment-cve5.zip"
)

// goSampleEvery adds every Nth other Go record to the demo database, so
// that it is not trivially small (a few hundred records across all years).
const goSampleEvery = 10

var (
	goRecordRE    = regexp.MustCompile(`^[^/]+/x/vulndb@[^/]+/data/osv/(GO-\d{4}-\d+)\.json$`)
	goModuleTopRE = regexp.MustCompile(`^[^@]+@[^/]+/(LICENSE|README\.md)$`)
	nodejsNPMRE   = regexp.MustCompile(`^vuln/npm/\d+\.json$`)
	cve5RecordRE  = regexp.MustCompile(`(?:^|/)(CVE-\d{4}-\d+)\.json$`)
	cveIDRE       = regexp.MustCompile(`^CVE-\d{4}-\d+$`)
)

// subsetStats counts what a subset kept.
type subsetStats struct {
	records int
	cves    int
	ids     []string
}

// osvHead is the part of an OSV record the selection reads.
type osvHead struct {
	ID        string   `json:"id"`
	Aliases   []string `json:"aliases"`
	Withdrawn string   `json:"withdrawn"`
	Affected  []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

// subsetGoVulnDB copies from the golang.org/x/vulndb module zip, unmodified
// (raw compressed bytes), every record naming one of modules, every
// withdrawn record, every goSampleEvery-th other record, and the module's
// LICENSE and README (which state the data's CC-BY-4.0 licence). It returns
// the CVE aliases of the records kept.
func subsetGoVulnDB(src, dst string, modules map[string]bool) (subsetStats, map[string]bool, error) {
	var st subsetStats
	zr, err := zip.OpenReader(src)
	if err != nil {
		return st, nil, fmt.Errorf("open %s: %w", src, err)
	}
	defer zr.Close()
	type rec struct {
		f    *zip.File
		head osvHead
	}
	var recs []rec
	var extra []*zip.File
	for _, f := range zr.File {
		if goRecordRE.MatchString(f.Name) {
			data, err := readZipFile(f, 4<<20)
			if err != nil {
				return st, nil, err
			}
			var h osvHead
			if err := json.Unmarshal(data, &h); err != nil {
				return st, nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			recs = append(recs, rec{f, h})
			continue
		}
		if goModuleTopRE.MatchString(f.Name) {
			extra = append(extra, f)
		}
	}
	if len(recs) == 0 {
		return st, nil, fmt.Errorf("%s: no data/osv records", src)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].head.ID < recs[j].head.ID })
	keep := map[*zip.File]bool{}
	for _, f := range extra {
		keep[f] = true
	}
	other := 0
	cves := map[string]bool{}
	for _, r := range recs {
		relevant := r.head.Withdrawn != ""
		for _, a := range r.head.Affected {
			if modules[a.Package.Name] {
				relevant = true
			}
		}
		if !relevant {
			other++
			relevant = other%goSampleEvery == 0
		}
		if !relevant {
			continue
		}
		keep[r.f] = true
		st.records++
		st.ids = append(st.ids, r.head.ID)
		for _, a := range r.head.Aliases {
			if cveIDRE.MatchString(a) {
				cves[a] = true
			}
		}
	}
	st.cves = len(cves)
	return st, cves, copyZipEntries(dst, zr.File, keep)
}

// subsetNodejs copies the nodejs-security-wg npm records about the given
// packages, the licence and the format README, unmodified.
func subsetNodejs(src, dst string, packages map[string]bool) (subsetStats, map[string]bool, error) {
	var st subsetStats
	zr, err := zip.OpenReader(src)
	if err != nil {
		return st, nil, fmt.Errorf("open %s: %w", src, err)
	}
	defer zr.Close()
	keep := map[*zip.File]bool{}
	cves := map[string]bool{}
	for _, f := range zr.File {
		switch {
		case f.Name == "LICENSE.md" || f.Name == "vuln/README.md":
			keep[f] = true
		case nodejsNPMRE.MatchString(f.Name):
			data, err := readZipFile(f, 1<<20)
			if err != nil {
				return st, nil, err
			}
			var r struct {
				ID         int      `json:"id"`
				ModuleName string   `json:"module_name"`
				CVEs       []string `json:"cves"`
			}
			if err := json.Unmarshal(data, &r); err != nil {
				return st, nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			if !packages[r.ModuleName] {
				continue
			}
			keep[f] = true
			st.records++
			st.ids = append(st.ids, fmt.Sprintf("%s (%s)", path.Base(f.Name), r.ModuleName))
			for _, c := range r.CVEs {
				if cveIDRE.MatchString(c) {
					cves[c] = true
				}
			}
		}
	}
	sort.Strings(st.ids)
	st.cves = len(cves)
	if st.records == 0 {
		return st, nil, fmt.Errorf("%s: no records for the demo's npm packages", src)
	}
	return st, cves, copyZipEntries(dst, zr.File, keep)
}

// subsetCVE5 copies the CVE 5 records of the given CVEs, unmodified.
func subsetCVE5(src, dst string, cves map[string]bool) (subsetStats, error) {
	var st subsetStats
	zr, err := zip.OpenReader(src)
	if err != nil {
		return st, fmt.Errorf("open %s: %w", src, err)
	}
	defer zr.Close()
	keep := map[*zip.File]bool{}
	for _, f := range zr.File {
		m := cve5RecordRE.FindStringSubmatch(f.Name)
		if m != nil && cves[m[1]] {
			keep[f] = true
			st.records++
			st.ids = append(st.ids, m[1])
		}
	}
	sort.Strings(st.ids)
	return st, copyZipEntries(dst, zr.File, keep)
}

// copyZipEntries writes the kept entries of files, in their source order,
// together with the directory entries above them, copying each entry's
// header and compressed bytes as they are: the records are not re-encoded.
func copyZipEntries(dst string, files []*zip.File, keep map[*zip.File]bool) error {
	dirs := map[string]bool{}
	for f := range keep {
		for d := path.Dir(f.Name); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	zw := zip.NewWriter(out)
	for _, f := range files {
		if !keep[f] && !(strings.HasSuffix(f.Name, "/") && dirs[f.Name]) {
			continue
		}
		raw, err := f.OpenRaw()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		fh := f.FileHeader
		w, err := zw.CreateRaw(&fh)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if _, err := io.Copy(w, raw); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}

func readZipFile(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", f.Name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return data, nil
}

// kevCatalog is the CISA KEV catalogue with its entries kept as raw JSON,
// so a filtered catalogue carries each entry byte for byte.
type kevCatalog struct {
	Title           json.RawMessage   `json:"title"`
	CatalogVersion  json.RawMessage   `json:"catalogVersion"`
	DateReleased    json.RawMessage   `json:"dateReleased"`
	Count           int               `json:"count"`
	Vulnerabilities []json.RawMessage `json:"vulnerabilities"`
}

// filterKEV writes the KEV catalogue with only the entries whose cveID is
// in cves. The catalogue's shape and formatting (4-space indentation, as
// CISA publishes it) are kept, entries are copied as raw bytes, and count
// is the number of entries kept.
func filterKEV(src, dst string, cves map[string]bool) (subsetStats, string, error) {
	var st subsetStats
	data, err := os.ReadFile(src)
	if err != nil {
		return st, "", err
	}
	var cat kevCatalog
	if err := json.Unmarshal(data, &cat); err != nil {
		return st, "", fmt.Errorf("parse %s: %w", src, err)
	}
	if len(cat.Vulnerabilities) == 0 {
		return st, "", fmt.Errorf("%s: no vulnerabilities", src)
	}
	var kept []json.RawMessage
	for _, v := range cat.Vulnerabilities {
		var e struct {
			CVEID string `json:"cveID"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return st, "", fmt.Errorf("parse %s entry: %w", src, err)
		}
		if cves[e.CVEID] {
			kept = append(kept, v)
			st.ids = append(st.ids, e.CVEID)
		}
	}
	st.records = len(kept)
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n    \"title\": %s,\n    \"catalogVersion\": %s,\n    \"dateReleased\": %s,\n    \"count\": %d,\n    \"vulnerabilities\": [",
		cat.Title, cat.CatalogVersion, cat.DateReleased, len(kept))
	for i, v := range kept {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n        ")
		b.Write(v)
	}
	if len(kept) > 0 {
		b.WriteString("\n    ")
	}
	b.WriteString("]\n}")
	if !json.Valid(b.Bytes()) {
		return st, "", errors.New("filtered KEV catalogue is not valid JSON")
	}
	var version string
	_ = json.Unmarshal(cat.CatalogVersion, &version)
	return st, version, os.WriteFile(dst, b.Bytes(), 0o644)
}
