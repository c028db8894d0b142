package vulndb

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Input formats. Each input is detected as one of them (see detect.go) unless
// ImportOptions.Format says which.
const (
	FormatOSV      = "osv"                // OSV records, JSON or YAML
	FormatKEV      = "cisa-kev"           // CISA Known Exploited Vulnerabilities catalogue
	FormatCVE5     = "cve5"               // CVE JSON 5 records (cvelistV5, CISA vulnrichment)
	FormatNodeJSWG = "nodejs-security-wg" // github.com/nodejs/security-wg vuln/npm/*.json
	FormatAlpine   = "alpine-secdb"       // Alpine secdb secfixes YAML
	FormatEPSS     = "epss"               // FIRST EPSS scores CSV
)

var formats = []string{FormatOSV, FormatKEV, FormatCVE5, FormatNodeJSWG, FormatAlpine, FormatEPSS}

// Formats lists the input formats Import understands, for --format's help
// and completion.
func Formats() []string { return slices.Clone(formats) }

// cveInfo is what a CVE 5 record adds to advisories that alias the CVE.
type cveInfo struct {
	CVSS        []CVSS    `json:"cvss,omitempty"`
	Description string    `json:"description,omitempty"`
	Published   time.Time `json:"published,omitzero"`
}

// --- CISA KEV -----------------------------------------------------------

type kevCatalog struct {
	CatalogVersion  string `json:"catalogVersion"`
	DateReleased    string `json:"dateReleased"`
	Vulnerabilities []struct {
		CveID                      string `json:"cveID"`
		DateAdded                  string `json:"dateAdded"`
		DueDate                    string `json:"dueDate"`
		KnownRansomwareCampaignUse string `json:"knownRansomwareCampaignUse"`
		RequiredAction             string `json:"requiredAction"`
	} `json:"vulnerabilities"`
}

// parseKEV reads the CISA KEV catalogue
// (https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json).
func parseKEV(data []byte) (map[string]KEV, time.Time, int, error) {
	var c kevCatalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("decode KEV catalogue: %w", err)
	}
	out := make(map[string]KEV, len(c.Vulnerabilities))
	skipped := 0
	for _, v := range c.Vulnerabilities {
		if !cveID.MatchString(v.CveID) {
			skipped++
			continue
		}
		out[v.CveID] = KEV{DateAdded: v.DateAdded, DueDate: v.DueDate,
			RansomwareUse: v.KnownRansomwareCampaignUse, RequiredAction: v.RequiredAction}
	}
	if len(out) == 0 {
		return nil, time.Time{}, skipped, errors.New("KEV catalogue lists no CVE")
	}
	released, _ := parseTime(c.DateReleased)
	return out, released, skipped, nil
}

var cveID = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)

// --- CVE JSON 5 ---------------------------------------------------------

type cve5Record struct {
	DataType    string `json:"dataType"`
	CveMetadata struct {
		CveID         string `json:"cveId"`
		State         string `json:"state"`
		DatePublished string `json:"datePublished"`
		DateUpdated   string `json:"dateUpdated"`
	} `json:"cveMetadata"`
	Containers struct {
		CNA cve5Container   `json:"cna"`
		ADP []cve5Container `json:"adp"`
	} `json:"containers"`
}

type cve5Container struct {
	ProviderMetadata struct {
		ShortName string `json:"shortName"`
	} `json:"providerMetadata"`
	Descriptions []struct {
		Lang  string `json:"lang"`
		Value string `json:"value"`
	} `json:"descriptions"`
	Metrics []map[string]json.RawMessage `json:"metrics"`
}

// parseCVE5 reads one CVE JSON 5 record (https://github.com/CVEProject/cve-schema).
// CVSS comes from the CNA's metrics and every ADP's (CISA's vulnrichment
// adds its own), each labelled with who assigned it. Rejected CVEs return
// withdrawn=true.
func parseCVE5(data []byte) (id string, info cveInfo, modified time.Time, withdrawn bool, err error) {
	if len(data) > MaxRecordSize {
		return "", info, modified, false, fmt.Errorf("record is %d bytes, over the %d limit", len(data), MaxRecordSize)
	}
	var r cve5Record
	if err := json.Unmarshal(data, &r); err != nil {
		return "", info, modified, false, fmt.Errorf("decode CVE 5 record: %w", err)
	}
	if r.DataType != "CVE_RECORD" {
		return "", info, modified, false, errNotRecord
	}
	id = r.CveMetadata.CveID
	if !cveID.MatchString(id) {
		return "", info, modified, false, fmt.Errorf("bad cveId %q", truncate(id))
	}
	modified, _ = parseTime(r.CveMetadata.DateUpdated)
	if r.CveMetadata.State == "REJECTED" {
		return id, info, modified, true, nil
	}
	info.Published, _ = parseTime(r.CveMetadata.DatePublished)
	for _, d := range r.Containers.CNA.Descriptions {
		if strings.HasPrefix(d.Lang, "en") {
			info.Description = d.Value
			break
		}
	}
	add := func(c cve5Container, source string) {
		for _, m := range c.Metrics {
			for k, raw := range m {
				if !strings.HasPrefix(k, "cvssV") {
					continue
				}
				var met struct {
					VectorString string  `json:"vectorString"`
					BaseScore    float64 `json:"baseScore"`
				}
				if json.Unmarshal(raw, &met) != nil || met.VectorString == "" {
					continue
				}
				cv, err := ScoreVector(met.VectorString)
				if err != nil {
					continue
				}
				cv.Source = source
				info.CVSS = append(info.CVSS, cv)
			}
		}
	}
	for _, a := range r.Containers.ADP {
		name := strings.ToLower(a.ProviderMetadata.ShortName)
		if name == "" {
			name = "adp"
		}
		add(a, name)
	}
	add(r.Containers.CNA, "cna")
	return id, info, modified, false, nil
}

// --- nodejs security-wg ---------------------------------------------------

type nodejsVuln struct {
	ID                 json.Number `json:"id"`
	Title              string      `json:"title"`
	Overview           string      `json:"overview"`
	CreatedAt          string      `json:"created_at"`
	UpdatedAt          string      `json:"updated_at"`
	PublishDate        string      `json:"publish_date"`
	ModuleName         string      `json:"module_name"`
	CVEs               []string    `json:"cves"`
	VulnerableVersions string      `json:"vulnerable_versions"`
	PatchedVersions    *string     `json:"patched_versions"`
	References         []string    `json:"references"`
	CVSSVector         string      `json:"cvss_vector"`
	CVSSScore          any         `json:"cvss_score"`
}

// parseNodeJSWG converts one vuln/npm/N.json of nodejs/security-wg: npm
// semver ranges in vulnerable_versions/patched_versions become intervals.
// IDs are "NSWG-ECO-N", as GitHub advisories cite them.
func parseNodeJSWG(data []byte) (*record, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("record is %d bytes, over the %d limit", len(data), MaxRecordSize)
	}
	var v nodejsVuln
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode nodejs-security-wg advisory: %w", err)
	}
	if v.ID == "" || v.ModuleName == "" {
		return nil, errNotRecord
	}
	if _, err := strconv.ParseUint(string(v.ID), 10, 32); err != nil {
		return nil, fmt.Errorf("bad id %q", truncate(string(v.ID)))
	}
	r := &record{ID: "NSWG-ECO-" + string(v.ID), Summary: v.Title, Details: v.Overview, References: v.References}
	if err := checkID(r.ID); err != nil {
		return nil, err
	}
	for _, c := range v.CVEs {
		if cveID.MatchString(c) {
			r.Aliases = append(r.Aliases, c)
		}
	}
	r.Published, _ = parseTime(v.PublishDate)
	r.Modified, _ = parseTime(v.UpdatedAt)
	if v.CVSSVector != "" {
		if c, err := ScoreVector(v.CVSSVector); err == nil {
			c.Source = FormatNodeJSWG
			r.CVSS = append(r.CVSS, c)
		}
	}
	vuln, err := npmRangeIntervals(v.VulnerableVersions)
	if err != nil {
		return nil, fmt.Errorf("%s: vulnerable_versions: %w", r.ID, err)
	}
	var patched []interval
	if v.PatchedVersions != nil {
		if patched, err = npmRangeIntervals(*v.PatchedVersions); err != nil {
			return nil, fmt.Errorf("%s: patched_versions: %w", r.ID, err)
		}
	}
	npmFixes(vuln, patched)
	// "<=99.999.99999" is the advisories' way to say "every version".
	for i := range vuln {
		if strings.HasPrefix(vuln[i].Hi, "99.999.") {
			vuln[i].Hi, vuln[i].HiIncl = "", false
		}
	}
	if len(vuln) == 0 {
		return nil, fmt.Errorf("%s: vulnerable_versions %q matches nothing", r.ID, truncate(v.VulnerableVersions))
	}
	r.Affected = []affected{{Ecosystem: "npm", Name: v.ModuleName, Ranges: vuln}}
	return r, nil
}

// --- Alpine secdb -------------------------------------------------------

type alpineSecdb struct {
	DistroVersion string `yaml:"distroversion"`
	RepoName      string `yaml:"reponame"`
	Packages      []struct {
		Pkg struct {
			Name     string              `yaml:"name"`
			Secfixes map[string][]string `yaml:"secfixes"`
		} `yaml:"pkg"`
	} `yaml:"packages"`
}

var alpineRelease = regexp.MustCompile(`^v\d+\.\d+$`)

// alpineFix is one "fixed in" line of a secdb file.
type alpineFix struct {
	ID, Release, Package, Fixed string
	Aliases                     []string
}

// parseAlpineSecdb reads one secdb file (v3.X/main.yaml): for each source
// package, each version lists the vulnerabilities fixed in it. Version "0"
// means the package was never affected on that branch. Lines are
// "CVE-2016-9932 XSA-200": the first word is the ID, the rest aliases.
func parseAlpineSecdb(data []byte) ([]alpineFix, int, error) {
	if len(data) > MaxRecordSize {
		return nil, 0, fmt.Errorf("file is %d bytes, over the %d limit", len(data), MaxRecordSize)
	}
	var db alpineSecdb
	if err := decodeYAML(data, &db); err != nil {
		return nil, 0, err
	}
	if !alpineRelease.MatchString(db.DistroVersion) {
		return nil, 0, fmt.Errorf("bad distroversion %q", truncate(db.DistroVersion))
	}
	var out []alpineFix
	skipped := 0
	for _, p := range db.Packages {
		if p.Pkg.Name == "" {
			continue
		}
		vers := make([]string, 0, len(p.Pkg.Secfixes))
		for ver := range p.Pkg.Secfixes {
			vers = append(vers, ver)
		}
		sort.Strings(vers) // map order is random; keep records deterministic
		for _, ver := range vers {
			for _, line := range p.Pkg.Secfixes[ver] {
				f := strings.Fields(line)
				if len(f) == 0 {
					continue
				}
				if ver == "0" {
					continue // not affected on this branch
				}
				if checkID(f[0]) != nil || strings.Contains(f[0], "?") {
					skipped++ // placeholders such as "CVE-????-?????"
					continue
				}
				out = append(out, alpineFix{ID: f[0], Release: db.DistroVersion, Package: p.Pkg.Name, Fixed: ver, Aliases: f[1:]})
			}
		}
	}
	return out, skipped, nil
}

// alpineRecords groups fix lines into one record per ID, with one affected
// entry per (release, package).
func alpineRecords(fixes []alpineFix) []*record {
	byID := map[string]*record{}
	var order []string
	for _, f := range fixes {
		r := byID[f.ID]
		if r == nil {
			r = &record{ID: f.ID}
			byID[f.ID] = r
			order = append(order, f.ID)
		}
		for _, a := range f.Aliases {
			if checkID(a) == nil && !contains(r.Aliases, a) {
				r.Aliases = append(r.Aliases, a)
			}
		}
		eco := "Alpine:" + f.Release
		var af *affected
		for i := range r.Affected {
			if r.Affected[i].Ecosystem == eco && r.Affected[i].Name == f.Package {
				af = &r.Affected[i]
			}
		}
		if af == nil {
			r.Affected = append(r.Affected, affected{Ecosystem: eco, Name: f.Package})
			af = &r.Affected[len(r.Affected)-1]
		}
		af.Ranges = append(af.Ranges, interval{Hi: f.Fixed, Fix: f.Fixed})
	}
	out := make([]*record, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id])
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --- EPSS ---------------------------------------------------------------

// maxEPSSScores bounds an EPSS file, so a decompression bomb of valid
// lines cannot grow the map without limit.
const maxEPSSScores = 5_000_000

// parseEPSS reads FIRST's EPSS CSV (https://www.first.org/epss/data_stats):
// an optional "#model_version:...,score_date:..." comment line, the header
// "cve,epss,percentile", then one CVE a line.
func parseEPSS(r io.Reader) (map[string]float64, time.Time, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	out := map[string]float64{}
	var date time.Time
	skipped := 0
	header := false
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "#") {
			for _, kv := range strings.Split(strings.TrimPrefix(t, "#"), ",") {
				if k, v, ok := strings.Cut(kv, ":"); ok && k == "score_date" {
					if d, err := time.Parse("2006-01-02T15:04:05-0700", v); err == nil {
						date = d.UTC()
					}
				}
			}
			continue
		}
		f := strings.Split(t, ",")
		if !header {
			if len(f) < 2 || f[0] != "cve" || f[1] != "epss" {
				return nil, date, skipped, fmt.Errorf("line %d: want header \"cve,epss,percentile\", got %q", line, truncate(t))
			}
			header = true
			continue
		}
		if len(f) < 2 || !cveID.MatchString(f[0]) {
			skipped++
			continue
		}
		p, err := strconv.ParseFloat(f[1], 64)
		if err != nil || p < 0 || p > 1 {
			skipped++
			continue
		}
		out[f[0]] = p
		if len(out) > maxEPSSScores {
			return nil, date, skipped, fmt.Errorf("more than %d EPSS scores (FIRST publishes about 300,000)", maxEPSSScores)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, date, skipped, fmt.Errorf("read EPSS CSV: %w", err)
	}
	if len(out) == 0 {
		return nil, date, skipped, errors.New("EPSS CSV holds no scores")
	}
	return out, date, skipped, nil
}
