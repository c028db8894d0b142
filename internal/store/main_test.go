package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store/pgtest"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// pg is the test PostgreSQL server, started on first use and stopped by
// TestMain (test-only state).
var pg = pgtest.New()

func TestMain(m *testing.M) {
	if dsn := os.Getenv(killChildEnv); dsn != "" {
		os.Exit(killChild(dsn))
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// backends are the two databases the tests run against.
var backends = pg.Backends()

// testKey is a fixed secret key for tests (a real deployment generates one).
var testKey = []byte("0123456789abcdef0123456789abcdef")

// forEach runs fn once per backend as a subtest with a fresh store.
func forEach(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			s := openStore(t, b.DSN(t), Options{SecretKey: testKey})
			fn(t, s)
		})
	}
}

func openStore(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a settable clock for lease and backoff tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is real data to build scan results from: the packages installed
// on a Debian 12 machine (dpkg-query output) and CISA KEV records.
type fixture struct {
	pkgs []inventory.Package
	kev  []kevRecord
}

type kevRecord struct {
	CVEID             string `json:"cveID"`
	VendorProject     string `json:"vendorProject"`
	Product           string `json:"product"`
	VulnerabilityName string `json:"vulnerabilityName"`
	DateAdded         string `json:"dateAdded"`
	DueDate           string `json:"dueDate"`
	RequiredAction    string `json:"requiredAction"`
	Ransomware        string `json:"knownRansomwareCampaignUse"`
}

var loadFixture = sync.OnceValues(func() (*fixture, error) {
	f := &fixture{}
	file, err := os.Open("testdata/debian12-packages.tsv")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) != 5 {
			return nil, fmt.Errorf("bad fixture line %q", line)
		}
		p := inventory.Package{Name: c[0], Version: c[1], Arch: c[2], Type: inventory.TypeDeb, Ecosystem: "Debian:12",
			PURL:     fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=debian-12", c[0], c[1], c[2]),
			Location: "var/lib/dpkg/status", Extractor: "os/dpkg"}
		if c[3] != c[0] || c[4] != c[1] {
			p.SourceName, p.SourceVersion = c[3], c[4]
		}
		f.pkgs = append(f.pkgs, p)
	}
	b, err := os.ReadFile("testdata/kev-sample.json")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Vulnerabilities []kevRecord `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	f.kev = doc.Vulnerabilities
	return f, nil
})

func fix(t testing.TB) *fixture {
	t.Helper()
	f, err := loadFixture()
	if err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	return f
}

// digestOf makes a well-formed sha256 digest from a label.
func digestOf(label string) string {
	h := sha256.Sum256([]byte(label))
	return "sha256:" + hex.EncodeToString(h[:])
}

// result builds an image scan result from real package and KEV records.
// The package↔vulnerability pairing is synthetic (the matcher that would
// produce real pairs is another package): finding i pairs vulnerability
// vulnOffset+i with package (i*7) mod nPkgs; severity cycles through
// the four levels and every third finding has a fixed version.
func (f *fixture) result(label string, nPkgs, nFindings, vulnOffset int) *scan.Result {
	nPkgs = min(nPkgs, len(f.pkgs))
	res := &scan.Result{
		SchemaVersion: scan.SchemaVersion,
		Tool:          scan.Tool{Name: "bulwark", Version: "test", Extractors: map[string]int{"os/dpkg": 1}},
		Target: scan.Target{Kind: "image", Name: "registry.example.com/team/" + label + ":1.0", Digest: digestOf(label),
			ImageID: digestOf("config-" + label), Platform: "linux/amd64",
			RepoTags: []string{"registry.example.com/team/" + label + ":1.0"},
			Layers:   []scan.Layer{{Digest: digestOf("layer-" + label), DiffID: digestOf("diff-" + label), Size: 1234}}, Size: 1234},
		StartedAt:  time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC),
		FinishedAt: time.Date(2026, 3, 1, 11, 59, 3, 0, time.UTC),
		OS:         &inventory.OS{ID: "debian", VersionID: "12", Codename: "bookworm", Location: "etc/os-release"},
		Packages:   f.pkgs[:nPkgs],
		DB:         &vulndb.Status{Built: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)},
	}
	for i := range nFindings {
		k := f.kev[(vulnOffset+i)%len(f.kev)]
		pi := (i * 7) % nPkgs
		p := res.Packages[pi]
		fd := scan.Finding{
			Match: vulndb.Match{Package: pi, InstalledVersion: p.Version, MatchedBy: "Debian:12/" + p.Name,
				Vulnerability: &vulndb.Vulnerability{ID: k.CVEID, Summary: k.VulnerabilityName, Source: "test",
					Severity: vulndb.Severity(1 + i%4),
					CVSS:     []vulndb.CVSS{{Version: "3.1", Score: float64(3 + i%7)}}}},
			Package: p,
		}
		if i%5 == 0 {
			fd.Vulnerability.KEV = &vulndb.KEV{DateAdded: k.DateAdded, DueDate: k.DueDate, RequiredAction: k.RequiredAction}
		}
		if i%3 == 0 {
			fd.FixedVersions = []string{p.Version + "+deb12u1"}
		}
		res.Findings = append(res.Findings, fd)
	}
	return res
}
