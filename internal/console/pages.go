package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// pageData is what every page's layout needs.
type pageData struct {
	Base    string
	Asset   string
	Title   string
	Nav     string
	User    *principal
	CSRF    string
	Version string
	Flash   *flash
}

func (c *Console) pageData(r *http.Request, nav, title string) *pageData {
	p := &pageData{Base: c.base, Asset: c.assetV, Title: title, Nav: nav, Version: c.cfg.Version}
	if pr := principalFrom(r.Context()); pr != nil {
		p.User, p.CSRF = pr, pr.CSRF
	}
	return p
}

// flash is a one-time message shown after a redirect (post/redirect/get).
type flash struct {
	Kind string `json:"k"` // "ok" or "error"
	Msg  string `json:"m"`
}

func (c *Console) setFlash(w http.ResponseWriter, kind, msg string) {
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	b, _ := json.Marshal(flash{Kind: kind, Msg: msg})
	http.SetCookie(w, c.cookie(flashCookie, c.sign("flash", b), time.Minute))
}

func (c *Console) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, c.cookie(flashCookie, "", 0))
	b, ok := c.verify("flash", ck.Value)
	if !ok {
		return nil
	}
	var f flash
	if json.Unmarshal(b, &f) != nil || (f.Kind != "ok" && f.Kind != "error") {
		return nil
	}
	return &f
}

// digestPattern is the OCI digest grammar, as the store checks it.
var digestPattern = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)

func validDigest(d string) bool { return len(d) <= 256 && digestPattern.MatchString(d) }

// vulnIDPattern covers advisory identifiers: CVE-2024-1234, GHSA-xxxx-…,
// GO-2024-2887, NSWG-ECO-495, RUSTSEC-…, DSA-5678-1, openSUSE-SU-….
var vulnIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$`)

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ---- images ----

var imageSortKeys = []string{"risk", "findings", "critical", "high", "kev", "fixable", "last_seen", "first_seen", "scanned", "packages", "size", "digest"}

type imageRow struct {
	Digest   string
	Name     string
	Registry string
	MoreRefs int
	OS       string
	Packages int
	Counts   sevCounts
	Total    int
	KEV      int
	Fixable  int
	Scanned  time.Time
	LastSeen time.Time
	Href     string
	Bar      []barSeg
}

type imagesData struct {
	*pageData
	Q, Severity, Registry, Repository, Sort string
	KEV, Fixable                            bool
	Per                                     int
	Rows                                    []imageRow
	Pager                                   pager
	Sorts                                   map[string]sortLink
	Filtered                                bool
	BarW                                    float64
	SevOptions                              []option
	PerOptions                              []option
}

type option struct {
	Value, Label string
	Selected     bool
}

func (c *Console) imagesPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &imagesData{pageData: c.pageData(r, "images", "Images"), BarW: 120}
	d.Q = q.text("q", 200)
	minSev, hasSev := q.severity("severity")
	if hasSev {
		d.Severity = sevKeys[sevIndex(minSev)]
	}
	d.KEV, d.Fixable = q.flag("kev"), q.flag("fixable")
	d.Registry, d.Repository = q.text("registry", 255), q.text("repository", 255)
	d.Sort = q.sortKey(imageSortKeys, "-risk")
	per := 50
	if s := q.enum("per", "25", "50", "100"); s != "" {
		per, _ = strconv.Atoi(s)
	}
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	d.Per = per
	f := store.ImageFilter{Query: d.Q, Registry: d.Registry, Repository: d.Repository, KEV: d.KEV, Fixable: d.Fixable}
	if hasSev {
		f.MinSeverity = minSev
	}
	d.Filtered = d.Q != "" || hasSev || d.KEV || d.Fixable || d.Registry != "" || d.Repository != ""
	ims, total, err := c.st.ListImages(r.Context(), f, store.Page{Limit: per, Offset: (page - 1) * per, Sort: d.Sort})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	scale := 0
	for _, im := range ims {
		scale = max(scale, im.Counts.Total())
	}
	for _, im := range ims {
		full, err := c.st.GetImage(r.Context(), im.Digest)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		name, reg := imageName(full)
		cs := countsOf(im.Counts)
		d.Rows = append(d.Rows, imageRow{Digest: im.Digest, Name: name, Registry: reg, MoreRefs: max(0, len(full.Refs)-1),
			OS: im.OS, Packages: im.PackageCount, Counts: cs, Total: im.Counts.Total(), KEV: im.Counts.KEV,
			Fixable: im.Counts.Fixable, Scanned: im.LastScannedAt, LastSeen: im.LastSeen,
			Href: c.url("/images/" + im.Digest), Bar: stackBar(sevKeys, sevLabels, cs[:], scale, d.BarW)})
	}
	v := q.v
	path := c.url("/images")
	d.Pager = newPager(path, v, page, per, total)
	d.Sorts = sortLinks(path, v, d.Sort, imageSortKeys, map[string]bool{"risk": true, "findings": true, "critical": true,
		"high": true, "kev": true, "fixable": true, "last_seen": true, "first_seen": true, "scanned": true, "packages": true, "size": true})
	d.SevOptions = []option{{"", "Any severity", !hasSev}}
	for i := range 4 {
		d.SevOptions = append(d.SevOptions, option{sevKeys[i], sevLabels[i] + " or worse", d.Severity == sevKeys[i]})
	}
	for _, n := range []int{25, 50, 100} {
		d.PerOptions = append(d.PerOptions, option{strconv.Itoa(n), strconv.Itoa(n) + " per page", n == per})
	}
	c.render(w, r, http.StatusOK, "images", d)
}

// ---- image detail ----

// maxImageFindings bounds the findings loaded for one image page (they are
// filtered and sorted in memory so the text filter can search summaries).
const maxImageFindings = 20_000

var findingSortKeys = []string{"severity", "cvss", "epss", "vuln", "package", "first_seen"}

type findingRow struct {
	store.Finding
	VulnHref string
	Key      string
}

type packageRow struct {
	inventory.Package
	Findings int
	// OS is true for packages of the OS package manager.
	OS         bool
	LayerIndex int
}

type layerRow struct {
	Digest, DiffID, CreatedBy string
	Size                      int64
	Index                     int
	Packages                  int
}

type refRow struct {
	store.ImageRef
	Name string
}

type imageData struct {
	*pageData
	Image      *store.Image
	Name       string
	Registry   string
	Refs       []refRow
	Counts     sevCounts
	Summary    []barSeg
	Tab        string
	Tabs       []tabLink
	HasSBOM    bool
	SBOMTime   time.Time
	ToolVer    string
	OSName     string
	Ecosystems []option

	// findings tab
	Q, Severity, Sort string
	Fixable           bool
	SevChips          []chip
	FixChip           chip
	Findings          []findingRow
	FindingsTotal     int
	FindingsCapped    bool
	Sorts             map[string]sortLink

	// packages tab
	Ecosystem string
	Packages  []packageRow
	PkgTotal  int

	Layers []layerRow
	Pager  pager
}

type tabLink struct {
	Key, Label, Href string
	N                int
	Active           bool
}

type chip struct {
	Key, Label, Href string
	N                int
	Active           bool
}

func (c *Console) imagePage(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if !validDigest(digest) {
		c.errorPage(w, r, http.StatusNotFound, "That is not an image digest.")
		return
	}
	q := newQuery(r)
	d := &imageData{pageData: c.pageData(r, "images", "Image")}
	d.Tab = q.enum("tab", "findings", "packages", "layers")
	if d.Tab == "" {
		d.Tab = "findings"
	}
	d.Q = q.text("q", 200)
	sev, hasSev := q.severity("severity")
	if hasSev {
		d.Severity = sevKeys[sevIndex(sev)]
	}
	d.Fixable = q.flag("fixable")
	d.Sort = q.sortKey(findingSortKeys, "-severity")
	d.Ecosystem = q.text("ecosystem", 64)
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	ctx := r.Context()
	im, err := c.st.GetImage(ctx, digest)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Image = im
	d.Name, d.Registry = imageName(im)
	d.Title = d.Name
	for _, ref := range im.Refs {
		d.Refs = append(d.Refs, refRow{ImageRef: ref, Name: ref.String()})
	}
	d.Counts = countsOf(im.Counts)
	d.Summary = stackBar(sevKeys, sevLabels, d.Counts[:], max(1, d.Counts.total()), 360)

	all, capped, err := c.imageFindings(ctx, digest)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.FindingsCapped = capped
	sb, err := c.st.GetSBOM(ctx, digest)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.storeError(w, r, err)
		return
	}
	var pkgs []inventory.Package
	if sb != nil {
		d.HasSBOM, d.SBOMTime, pkgs = true, sb.CreatedAt, sb.Packages
		d.ToolVer = strings.TrimSpace(sb.Tool.Name + " " + sb.Tool.Version)
		if sb.OS != nil {
			d.OSName = cmp.Or(sb.OS.PrettyName, strings.TrimSpace(sb.OS.ID+" "+sb.OS.VersionID))
		}
	}
	if d.OSName == "" {
		d.OSName = im.OS
	}
	base := c.url("/images/" + digest)
	v := q.v
	for _, t := range []struct{ key, label string }{{"findings", "Findings"}, {"packages", "Packages"}, {"layers", "Layers"}} {
		n := len(all)
		switch t.key {
		case "packages":
			n = len(pkgs)
		case "layers":
			n = len(im.Layers)
		}
		href := base
		if t.key != "findings" {
			href = link(base, nil, "tab", t.key)
		}
		d.Tabs = append(d.Tabs, tabLink{Key: t.key, Label: t.label, Href: href, N: n, Active: t.key == d.Tab})
	}
	const per = 50
	switch d.Tab {
	case "findings":
		var sevN sevCounts
		fixN := 0
		var shown []store.Finding
		for _, f := range all {
			if d.Q != "" && !findingMatches(&f, d.Q) {
				continue
			}
			if d.Fixable && !f.Fixable() {
				continue
			}
			sevN[sevIndex(f.Severity)]++
			if hasSev && f.Severity != sev {
				continue
			}
			if f.Fixable() {
				fixN++
			}
			shown = append(shown, f)
		}
		sortFindings(shown, d.Sort)
		d.SevChips = append(d.SevChips, chip{Key: "all", Label: "All", N: sevN.total(), Active: !hasSev,
			Href: link(base, v, "severity", "", "page", "")})
		for i := range sevKeys {
			d.SevChips = append(d.SevChips, chip{Key: sevKeys[i], Label: sevLabels[i], N: sevN[i], Active: d.Severity == sevKeys[i],
				Href: link(base, v, "severity", sevKeys[i], "page", "")})
		}
		d.FindingsTotal = len(shown)
		from, to := pageBounds(page, per, len(shown))
		for _, f := range shown[from:to] {
			d.Findings = append(d.Findings, findingRow{Finding: f, VulnHref: c.url("/vulns/" + url.PathEscape(f.VulnID)),
				Key: sevKeys[sevIndex(f.Severity)]})
		}
		d.Pager = newPager(base, v, page, per, len(shown))
		d.Sorts = sortLinks(base, v, d.Sort, findingSortKeys, map[string]bool{"severity": true, "cvss": true, "epss": true, "first_seen": true})
	case "packages":
		perPkg := map[string]int{}
		for _, f := range all {
			perPkg[f.Ecosystem+"\x00"+f.Package+"\x00"+f.Version+"\x00"+f.Location]++
		}
		layerIdx := map[string]int{}
		for i, l := range im.Layers {
			layerIdx[l.Digest], layerIdx[l.DiffID] = i+1, i+1
		}
		ecos := map[string]int{}
		var rows []packageRow
		for _, p := range pkgs {
			ecos[p.Ecosystem]++
			if d.Ecosystem != "" && p.Ecosystem != d.Ecosystem {
				continue
			}
			if d.Q != "" && !containsFold(p.Name, d.Q) && !containsFold(p.Location, d.Q) && !containsFold(p.PURL, d.Q) &&
				!containsFold(p.SourceName, d.Q) && !containsFold(p.OSPackage, d.Q) {
				continue
			}
			rows = append(rows, packageRow{Package: p, Findings: perPkg[p.Ecosystem+"\x00"+p.Name+"\x00"+p.Version+"\x00"+p.Location],
				OS: p.Type == inventory.TypeDeb || p.Type == inventory.TypeAPK || p.Type == inventory.TypeRPM, LayerIndex: layerIdx[p.Layer]})
		}
		slices.SortStableFunc(rows, func(a, b packageRow) int {
			return cmp.Or(cmp.Compare(b.Findings, a.Findings), cmp.Compare(a.Ecosystem, b.Ecosystem), cmp.Compare(a.Name, b.Name))
		})
		keys := make([]string, 0, len(ecos))
		for k := range ecos {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d.Ecosystems = append(d.Ecosystems, option{"", "All ecosystems", d.Ecosystem == ""})
		for _, k := range keys {
			d.Ecosystems = append(d.Ecosystems, option{k, fmt.Sprintf("%s (%d)", cmp.Or(k, "(none)"), ecos[k]), k == d.Ecosystem})
		}
		d.PkgTotal = len(rows)
		const perP = 100
		from, to := pageBounds(page, perP, len(rows))
		d.Packages = rows[from:to]
		d.Pager = newPager(base, v, page, perP, len(rows))
	case "layers":
		n := map[string]int{}
		for _, p := range pkgs {
			n[p.Layer]++
		}
		for i, l := range im.Layers {
			cnt := n[l.Digest]
			if l.DiffID != l.Digest {
				cnt += n[l.DiffID]
			}
			d.Layers = append(d.Layers, layerRow{Digest: l.Digest, DiffID: l.DiffID, CreatedBy: l.CreatedBy, Size: l.Size,
				Index: i + 1, Packages: cnt})
		}
	}
	c.render(w, r, http.StatusOK, "image", d)
}

func pageBounds(page, per, n int) (from, to int) {
	from = min((page-1)*per, n)
	to = min(from+per, n)
	return from, to
}

// imageFindings loads an image's open findings, at most maxImageFindings.
func (c *Console) imageFindings(ctx context.Context, digest string) ([]store.Finding, bool, error) {
	var all []store.Finding
	for off := 0; off < maxImageFindings; off += store.MaxLimit {
		page, total, err := c.st.ListFindings(ctx, store.FindingFilter{ImageDigest: digest},
			store.Page{Limit: store.MaxLimit, Offset: off, Sort: "-severity"})
		if err != nil {
			return nil, false, err
		}
		all = append(all, page...)
		if off+store.MaxLimit >= total || len(page) == 0 {
			return all, false, nil
		}
	}
	return all, true, nil
}

func containsFold(s, sub string) bool {
	return sub != "" && strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func findingMatches(f *store.Finding, q string) bool {
	if containsFold(f.VulnID, q) || containsFold(f.Package, q) || containsFold(f.Summary, q) || containsFold(f.Location, q) ||
		containsFold(f.Version, q) || containsFold(f.Ecosystem, q) {
		return true
	}
	for _, a := range f.Aliases {
		if containsFold(a, q) {
			return true
		}
	}
	return false
}

func sortFindings(fs []store.Finding, key string) {
	desc := strings.HasPrefix(key, "-")
	k := strings.TrimPrefix(key, "-")
	slices.SortStableFunc(fs, func(a, b store.Finding) int {
		var c int
		switch k {
		case "cvss":
			c = cmp.Compare(a.CVSSScore, b.CVSSScore)
		case "epss":
			c = cmp.Compare(a.EPSS, b.EPSS)
		case "vuln":
			c = cmp.Compare(a.VulnID, b.VulnID)
		case "package":
			c = cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Version, b.Version))
		case "first_seen":
			c = a.FirstSeen.Compare(b.FirstSeen)
		default:
			c = cmp.Or(cmp.Compare(a.Severity, b.Severity), boolCmp(a.KEV, b.KEV), cmp.Compare(a.CVSSScore, b.CVSSScore))
		}
		if desc {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.VulnID, b.VulnID), cmp.Compare(a.Package, b.Package), cmp.Compare(a.Location, b.Location))
	})
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// ---- vulnerability ----

func (c *Console) vulnLookup(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	id := q.text("id", 128)
	if q.err != nil || !vulnIDPattern.MatchString(id) {
		c.errorPage(w, r, http.StatusBadRequest, "Enter a vulnerability identifier such as CVE-2024-3094 or GHSA-…")
		return
	}
	http.Redirect(w, r, c.url("/vulns/"+url.PathEscape(id)), http.StatusSeeOther)
}

// maxVulnFindings bounds the findings read for one vulnerability page.
const maxVulnFindings = 5000

type affectedPkg struct {
	Name, Ecosystem, Version, Installed, Location string
	Fixed                                         []string
	FirstSeen                                     time.Time
}

type affectedImage struct {
	Digest, Name, Registry, Href string
	Packages                     []affectedPkg
	KEV                          bool
}

type vulnData struct {
	*pageData
	ID        string
	Aliases   []string
	Summary   string
	Details   string
	Severity  vulndb.Severity
	SevKey    string
	CVSS      float64
	Vectors   []vulndb.CVSS
	EPSS      float64
	KEV       bool
	KEVInfo   *vulndb.KEV
	Published time.Time
	Modified  time.Time
	Refs      []string
	Source    string
	Images    []affectedImage
	Findings  int
	Capped    bool
	Fixable   int
}

func (c *Console) vulnPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !vulnIDPattern.MatchString(id) {
		c.errorPage(w, r, http.StatusNotFound, "That is not a vulnerability identifier.")
		return
	}
	ctx := r.Context()
	d := &vulnData{pageData: c.pageData(r, "images", id), ID: id}
	var fs []store.Finding
	total := 0
	for off := 0; off < maxVulnFindings; off += store.MaxLimit {
		page, n, err := c.st.ListFindings(ctx, store.FindingFilter{VulnID: id}, store.Page{Limit: store.MaxLimit, Offset: off, Sort: "image"})
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		fs, total = append(fs, page...), n
		if off+store.MaxLimit >= n || len(page) == 0 {
			break
		}
	}
	d.Capped = len(fs) < total
	var rec *vulndb.Vulnerability
	if c.deps.Vulnerability != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := c.deps.Vulnerability(cctx, id)
		cancel()
		switch {
		case err == nil:
			rec = v
		case errors.Is(err, store.ErrNotFound):
		default:
			c.log.WarnContext(ctx, "console: vulnerability lookup", "id", id, "err", err)
		}
	}
	if len(fs) == 0 && rec == nil {
		c.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("No open finding in any image refers to %s.", id))
		return
	}
	aliases := map[string]bool{}
	for _, f := range fs {
		if d.Summary == "" {
			d.Summary = f.Summary
		}
		if f.VulnID != id {
			aliases[f.VulnID] = true
		}
		for _, a := range f.Aliases {
			if a != id {
				aliases[a] = true
			}
		}
		d.Severity = max(d.Severity, f.Severity)
		d.CVSS = max(d.CVSS, f.CVSSScore)
		d.EPSS = max(d.EPSS, f.EPSS)
		d.KEV = d.KEV || f.KEV
		if f.Fixable() {
			d.Fixable++
		}
	}
	if rec != nil {
		if rec.ID != id {
			aliases[rec.ID] = true
		}
		for _, a := range rec.Aliases {
			if a != id {
				aliases[a] = true
			}
		}
		d.Summary = cmp.Or(rec.Summary, d.Summary)
		d.Details, d.Vectors, d.Published, d.Modified, d.Source = rec.Details, rec.CVSS, rec.Published, rec.Modified, rec.Source
		d.Severity = max(d.Severity, rec.Severity)
		d.EPSS = max(d.EPSS, rec.EPSS)
		for _, cv := range rec.CVSS {
			d.CVSS = max(d.CVSS, cv.Score)
		}
		if rec.KEV != nil {
			d.KEV, d.KEVInfo = true, rec.KEV
		}
		for _, ref := range rec.References {
			if u, err := url.Parse(ref); err == nil && (u.Scheme == "https" || u.Scheme == "http") && len(d.Refs) < 50 {
				d.Refs = append(d.Refs, ref)
			}
		}
	}
	for a := range aliases {
		d.Aliases = append(d.Aliases, a)
	}
	slices.Sort(d.Aliases)
	d.SevKey = sevKeys[sevIndex(d.Severity)]
	d.Findings = len(fs)
	byImage := map[string]*affectedImage{}
	var order []string
	for _, f := range fs {
		ai := byImage[f.ImageDigest]
		if ai == nil {
			ai = &affectedImage{Digest: f.ImageDigest, Href: c.url("/images/" + f.ImageDigest)}
			byImage[f.ImageDigest] = ai
			order = append(order, f.ImageDigest)
		}
		ai.KEV = ai.KEV || f.KEV
		ai.Packages = append(ai.Packages, affectedPkg{Name: f.Package, Ecosystem: f.Ecosystem, Version: f.Version,
			Installed: f.InstalledVersion, Location: f.Location, Fixed: f.FixedVersions, FirstSeen: f.FirstSeen})
	}
	const maxNamed = 200
	for i, dg := range order {
		ai := byImage[dg]
		ai.Name = shortDigest(dg)
		if i < maxNamed {
			im, err := c.st.GetImage(ctx, dg)
			if err != nil {
				c.storeError(w, r, err)
				return
			}
			ai.Name, ai.Registry = imageName(im)
		}
		d.Images = append(d.Images, *ai)
	}
	slices.SortStableFunc(d.Images, func(a, b affectedImage) int { return cmp.Compare(a.Name, b.Name) })
	c.render(w, r, http.StatusOK, "vuln", d)
}

// ---- scans ----

type scansData struct {
	*pageData
	Status string
	Rows   []scanRow
	Pager  pager
	Chips  []chip
}

func (c *Console) scansPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &scansData{pageData: c.pageData(r, "scans", "Scans")}
	d.Status = q.enum("status", "succeeded", "failed")
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	const per = 50
	recs, total, err := c.st.ListScans(r.Context(), store.ScanFilter{Status: store.ScanStatus(d.Status)},
		store.Page{Limit: per, Offset: (page - 1) * per})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for _, s := range recs {
		sr := scanRow{ScanRecord: s}
		if s.ImageDigest != "" {
			sr.ImageHref = c.url("/images/" + s.ImageDigest)
		}
		d.Rows = append(d.Rows, sr)
	}
	path := c.url("/scans")
	d.Pager = newPager(path, q.v, page, per, total)
	for _, s := range []struct{ k, l string }{{"", "All"}, {"succeeded", "Succeeded"}, {"failed", "Failed"}} {
		d.Chips = append(d.Chips, chip{Key: s.k, Label: s.l, Active: d.Status == s.k, Href: link(path, nil, "status", s.k)})
	}
	c.render(w, r, http.StatusOK, "scans", d)
}

// ---- jobs ----

type jobsData struct {
	*pageData
	State string
	Kind  string
	Stats store.QueueStats
	Rows  []store.Job
	Pager pager
	Chips []chip
}

func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &jobsData{pageData: c.pageData(r, "jobs", "Scan jobs")}
	d.State = q.enum("state", "pending", "running", "done", "failed")
	d.Kind = q.text("kind", 64)
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	ctx := r.Context()
	var err error
	if d.Stats, err = c.st.QueueStats(ctx); err != nil {
		c.storeError(w, r, err)
		return
	}
	const per = 50
	jobs, total, err := c.st.ListJobs(ctx, store.JobFilter{State: store.JobState(d.State), Kind: d.Kind},
		store.Page{Limit: per, Offset: (page - 1) * per})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Rows = jobs
	path := c.url("/jobs")
	d.Pager = newPager(path, q.v, page, per, total)
	counts := map[string]int{"pending": d.Stats.Pending, "running": d.Stats.Running, "done": d.Stats.Done, "failed": d.Stats.Failed}
	d.Chips = append(d.Chips, chip{Key: "", Label: "All", Active: d.State == "", N: d.Stats.Pending + d.Stats.Running + d.Stats.Done + d.Stats.Failed,
		Href: link(path, q.v, "state", "", "page", "")})
	for _, s := range []string{"pending", "running", "done", "failed"} {
		d.Chips = append(d.Chips, chip{Key: s, Label: strings.ToUpper(s[:1]) + s[1:], N: counts[s], Active: d.State == s,
			Href: link(path, q.v, "state", s, "page", "")})
	}
	c.render(w, r, http.StatusOK, "jobs", d)
}

// ---- registries ----

type registryForm struct {
	Name, URL, Kind, Repositories, Username string
	Insecure                                bool
}

type registriesData struct {
	*pageData
	Rows     []store.Registry
	CanTest  bool
	Form     registryForm
	FormErr  string
	Kinds    []option
	ShowForm bool
}

func (c *Console) registriesPage(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	d := c.registriesData(r)
	d.Flash = c.takeFlash(w, r)
	c.renderRegistries(w, r, http.StatusOK, d)
}

func (c *Console) registriesData(r *http.Request) *registriesData {
	d := &registriesData{pageData: c.pageData(r, "registries", "Registries"), CanTest: c.deps.TestRegistry != nil,
		Form: registryForm{Kind: string(store.RegistryDistribution)}}
	return d
}

func (c *Console) renderRegistries(w http.ResponseWriter, r *http.Request, status int, d *registriesData) {
	regs, err := c.st.ListRegistries(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Rows = regs
	d.Kinds = nil
	for _, k := range []struct{ v, l string }{{"distribution", "CNCF Distribution (push notifications)"},
		{"harbor", "Harbor (webhooks)"}, {"generic", "Other OCI registry (periodic sweep)"}} {
		d.Kinds = append(d.Kinds, option{k.v, k.l, d.Form.Kind == k.v})
	}
	c.render(w, r, status, "registries", d)
}

// Registry form limits.
const (
	maxRegistryName  = 100
	maxRegistryURL   = 2048
	maxRepositories  = 200
	maxRepository    = 255
	maxCredentialLen = 4096
)

func (c *Console) registryCreate(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	f := r.PostForm
	d := c.registriesData(r)
	d.ShowForm = true
	d.Form = registryForm{Name: strings.TrimSpace(f.Get("name")), URL: strings.TrimSpace(f.Get("url")), Kind: f.Get("kind"),
		Repositories: f.Get("repositories"), Username: f.Get("username"), Insecure: f.Get("insecure") != ""}
	fail := func(status int, msg string) {
		if len(d.Form.Name) > maxRegistryName {
			d.Form.Name = ""
		}
		if len(d.Form.URL) > maxRegistryURL {
			d.Form.URL = ""
		}
		if len(d.Form.Repositories) > maxRepositories*(maxRepository+1) {
			d.Form.Repositories = ""
		}
		if len(d.Form.Username) > maxCredentialLen {
			d.Form.Username = ""
		}
		d.FormErr = msg
		c.renderRegistries(w, r, status, d)
	}
	switch {
	case d.Form.Name == "" || len(d.Form.Name) > maxRegistryName || !cleanText(d.Form.Name):
		fail(http.StatusBadRequest, fmt.Sprintf("Name: 1 to %d printable characters.", maxRegistryName))
		return
	case len(d.Form.URL) > maxRegistryURL || !cleanText(d.Form.URL):
		fail(http.StatusBadRequest, "URL: too long or holds invalid characters.")
		return
	case d.Form.Kind != "distribution" && d.Form.Kind != "harbor" && d.Form.Kind != "generic":
		fail(http.StatusBadRequest, "Kind: choose one of the listed kinds.")
		return
	}
	u, err := url.Parse(d.Form.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		fail(http.StatusBadRequest, "URL: give the registry's base URL, e.g. https://registry.example.com (credentials go in their own fields).")
		return
	}
	var repos []string
	for _, line := range strings.FieldsFunc(d.Form.Repositories, func(r rune) bool { return r == '\n' || r == ',' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(line) > maxRepository || !cleanText(line) || strings.ContainsAny(line, " \t") {
			fail(http.StatusBadRequest, fmt.Sprintf("Repositories: each is a path pattern of at most %d characters without spaces.", maxRepository))
			return
		}
		repos = append(repos, line)
	}
	if len(repos) > maxRepositories {
		fail(http.StatusBadRequest, fmt.Sprintf("Repositories: at most %d.", maxRepositories))
		return
	}
	creds := store.Credentials{Username: f.Get("username"), Password: f.Get("password"), WebhookSecret: f.Get("webhook_secret")}
	if len(creds.Username) > maxCredentialLen || len(creds.Password) > maxCredentialLen || len(creds.WebhookSecret) > maxCredentialLen {
		fail(http.StatusBadRequest, fmt.Sprintf("Credentials: at most %d bytes each.", maxCredentialLen))
		return
	}
	if (creds.Username == "") != (creds.Password == "") {
		fail(http.StatusBadRequest, "Credentials: give both a username and a password (or token), or neither.")
		return
	}
	reg := store.Registry{Name: d.Form.Name, URL: strings.TrimRight(d.Form.URL, "/"), Kind: store.RegistryKind(d.Form.Kind),
		Repositories: repos, Insecure: d.Form.Insecure}
	if creds != (store.Credentials{}) {
		reg.Credentials = &creds
	}
	created, err := c.st.CreateRegistry(r.Context(), reg)
	switch {
	case errors.Is(err, store.ErrConflict):
		fail(http.StatusConflict, fmt.Sprintf("A registry named %q already exists.", reg.Name))
		return
	case errors.Is(err, store.ErrInvalid):
		fail(http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, store.ErrNoSecretKey):
		fail(http.StatusBadRequest, "Credentials cannot be stored: central was started without a secret key.")
		return
	case err != nil:
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), p.Actor, "registry.create", fmt.Sprintf("registry/%d", created.ID), map[string]any{
		"name": created.Name, "url": created.URL, "kind": created.Kind, "repositories": created.Repositories,
		"insecure": created.Insecure, "credentials": created.HasCredentials})
	c.log.InfoContext(r.Context(), "console: registry added", "actor", p.Actor, "registry", created.Name)
	c.setFlash(w, "ok", fmt.Sprintf("Registry %s added.", created.Name))
	http.Redirect(w, r, c.url("/registries"), http.StatusSeeOther)
}

func (c *Console) registryTest(w http.ResponseWriter, r *http.Request) {
	if c.deps.TestRegistry == nil {
		c.errorPage(w, r, http.StatusNotFound, "Testing registry connections is not available.")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.errorPage(w, r, http.StatusNotFound, "No such registry.")
		return
	}
	regs, err := c.st.ListRegistries(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	var reg *store.Registry
	for i := range regs {
		if regs[i].ID == id {
			reg = &regs[i]
		}
	}
	if reg == nil {
		c.errorPage(w, r, http.StatusNotFound, "No such registry.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	err = c.deps.TestRegistry(ctx, id)
	cancel()
	p := principalFrom(r.Context())
	if err != nil {
		c.log.InfoContext(r.Context(), "console: registry test failed", "actor", p.Actor, "registry", reg.Name, "err", err)
		c.setFlash(w, "error", fmt.Sprintf("Connection to %s failed: %v", reg.Name, err))
	} else {
		c.setFlash(w, "ok", fmt.Sprintf("Connection to %s works.", reg.Name))
	}
	http.Redirect(w, r, c.url("/registries"), http.StatusSeeOther)
}
