package vulndb

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// found is the part of a Match the decision tables compare.
type found struct {
	ID        string
	Fixed     []string
	MatchedBy string
	Installed string
}

func summarize(ms []Match) []found {
	var out []found
	for _, m := range ms {
		out = append(out, found{m.Vulnerability.ID, m.FixedVersions, m.MatchedBy, m.InstalledVersion})
	}
	return out
}

func goMod(name, version string) inventory.Package {
	return inventory.Package{Name: name, Version: version, Type: inventory.TypeGolang, Ecosystem: inventory.EcosystemGo}
}

func TestMatchDecisions(t *testing.T) {
	db := importDirs(t, allTestdata...)
	f := func(id, matchedBy, installed string, fixed ...string) found {
		return found{ID: id, Fixed: fixed, MatchedBy: matchedBy, Installed: installed}
	}
	tests := []struct {
		name string
		pkg  inventory.Package
		want []found
	}{
		// Go modules: OSV Go versions have no "v"; fixed is exclusive.
		{"go module below fix", goMod("golang.org/x/text", "v0.3.7"),
			[]found{f("GO-2022-1059", "Go/golang.org/x/text", "0.3.7", "0.3.8")}},
		{"go module at fix", goMod("golang.org/x/text", "v0.3.8"), nil},
		{"go pseudo-version before the fix release", goMod("golang.org/x/text", "v0.3.8-0.20220915000000-aaaaaaaaaaaa"),
			[]found{f("GO-2022-1059", "Go/golang.org/x/text", "0.3.8-0.20220915000000-aaaaaaaaaaaa", "0.3.8")}},
		{"go pseudo-version fix, older commit", goMod("github.com/square/go-jose", "v0.0.0-20160101000000-aaaaaaaaaaaa"),
			[]found{f("GO-2020-0009", "Go/github.com/square/go-jose", "0.0.0-20160101000000-aaaaaaaaaaaa", "0.0.0-20160903044734-789a4c4bd4c1")}},
		{"go pseudo-version fix, newer commit", goMod("github.com/square/go-jose", "v0.0.0-20170101000000-aaaaaaaaaaaa"), nil},
		{"ecosystem from PURL type", inventory.Package{Name: "golang.org/x/text", Version: "v0.3.0", Type: inventory.TypeGolang},
			[]found{f("GO-2022-1059", "Go/golang.org/x/text", "0.3.0", "0.3.8")}},
		{"OS-installed Go module is not matched as Go", func() inventory.Package {
			p := goMod("golang.org/x/text", "v0.3.7")
			p.OSPackage = "golang-golang-x-text-dev"
			return p
		}(), nil},
		// Go standard library: fixes only from the range holding the version.
		{"stdlib go1.22.0", goMod("stdlib", "go1.22.0"), []found{
			f("GO-2024-2687", "Go/stdlib", "1.22.0", "1.22.2"),
			f("GO-2024-2887", "Go/stdlib", "1.22.0", "1.22.4"),
		}},
		{"stdlib at fix of the 1.21 branch", goMod("stdlib", "v1.21.11"), nil},
		{"stdlib one before fix", goMod("stdlib", "1.21.10"), []found{f("GO-2024-2887", "Go/stdlib", "1.21.10", "1.21.11")}},
		{"stdlib release candidate", goMod("stdlib", "go1.21rc2"), []found{
			f("GO-2023-2102", "Go/stdlib", "1.21.0-rc.2", "1.21.3"),
			f("GO-2024-2687", "Go/stdlib", "1.21.0-rc.2", "1.21.9"),
			f("GO-2024-2887", "Go/stdlib", "1.21.0-rc.2", "1.21.11"),
		}},
		{"development toolchain cannot be compared", goMod("stdlib", "devel go1.23-abcdef Tue Jan 2 2024"), nil},
		{"withdrawn record ignored", goMod("k8s.io/kubernetes", "v1.20.0"), nil},
		// GO-2023-1574 and GHSA-hmfx-3pcx-653p describe one vulnerability.
		{"aliases reported once", goMod("github.com/containerd/containerd", "v1.6.0"),
			[]found{f("GO-2023-1574", "Go/github.com/containerd/containerd", "1.6.0", "1.6.18")}},
		{"aliases, other branch", goMod("github.com/containerd/containerd", "v1.5.0"),
			[]found{f("GO-2023-1574", "Go/github.com/containerd/containerd", "1.5.0", "1.5.18")}},
		{"aliases, fixed", goMod("github.com/containerd/containerd", "v1.5.18"), nil},

		// PyPI: PEP 503 names, PEP 440 versions; events sorted before use
		// (PYSEC-2023-192 lists introduced 2.0.0 before introduced 0).
		{"pypi", inventory.Package{Name: "urllib3", Version: "1.17", Type: inventory.TypePyPI, Ecosystem: "PyPI"}, []found{
			f("PYSEC-2017-98", "PyPI/urllib3", "1.17", "1.18.1"),
			f("PYSEC-2018-32", "PyPI/urllib3", "1.17", "1.23"),
			f("PYSEC-2021-108", "PyPI/urllib3", "1.17", "1.26.5"),
			f("PYSEC-2023-192", "PyPI/urllib3", "1.17", "1.26.17"),
		}},
		{"pypi PEP 503 name", inventory.Package{Name: "URLLib3", Version: "1.26.16", Ecosystem: "PyPI"},
			[]found{f("PYSEC-2023-192", "PyPI/URLLib3", "1.26.16", "1.26.17")}},
		{"pypi unsorted events, second branch", inventory.Package{Name: "urllib3", Version: "2.0.5", Ecosystem: "PyPI"},
			[]found{f("PYSEC-2023-192", "PyPI/urllib3", "2.0.5", "2.0.6")}},
		{"pypi at fix", inventory.Package{Name: "urllib3", Version: "2.0.6", Ecosystem: "PyPI"}, nil},
		{"pypi pre-release sorts before its release", inventory.Package{Name: "urllib3", Version: "1.23rc1", Ecosystem: "PyPI"}, []found{
			f("PYSEC-2018-32", "PyPI/urllib3", "1.23rc1", "1.23"),
			f("PYSEC-2021-108", "PyPI/urllib3", "1.23rc1", "1.26.5"),
			f("PYSEC-2023-192", "PyPI/urllib3", "1.23rc1", "1.26.17"),
		}},
		{"pypi introduced is inclusive", inventory.Package{Name: "urllib3", Version: "1.18.1", Ecosystem: "PyPI"}, []found{
			f("PYSEC-2018-32", "PyPI/urllib3", "1.18.1", "1.23"),
			f("PYSEC-2021-108", "PyPI/urllib3", "1.18.1", "1.26.5"),
			f("PYSEC-2023-192", "PyPI/urllib3", "1.18.1", "1.26.17"),
		}},
		{"pypi withdrawn", inventory.Package{Name: "aiohttp", Version: "3.8.0", Ecosystem: "PyPI"}, nil},
		{"pypi installed by the OS", inventory.Package{Name: "urllib3", Version: "1.17", Ecosystem: "PyPI", OSPackage: "python3-urllib3"}, nil},

		// crates.io
		{"crate below fix", inventory.Package{Name: "lock_api", Version: "0.4.1", Ecosystem: "crates.io"},
			[]found{f("RUSTSEC-2020-0070", "crates.io/lock_api", "0.4.1", "0.4.2")}},
		{"crate at fix", inventory.Package{Name: "lock_api", Version: "0.4.2", Ecosystem: "crates.io"}, nil},
		{"crate introduced inclusive", inventory.Package{Name: "time", Version: "0.3.6", Ecosystem: "crates.io"},
			[]found{f("RUSTSEC-2026-0009", "crates.io/time", "0.3.6", "0.3.47")}},
		{"crate below introduced", inventory.Package{Name: "time", Version: "0.3.5", Ecosystem: "crates.io"}, nil},
		{"crate several ranges", inventory.Package{Name: "smallvec", Version: "0.6.2", Ecosystem: "crates.io"},
			[]found{f("RUSTSEC-2018-0003", "crates.io/smallvec", "0.6.2", "0.6.3")}},
		{"crate next range", inventory.Package{Name: "smallvec", Version: "0.6.3", Ecosystem: "crates.io"},
			[]found{f("RUSTSEC-2021-0003", "crates.io/smallvec", "0.6.3", "0.6.14")}},

		// npm (nodejs security-wg semver ranges)
		{"npm", inventory.Package{Name: "lodash", Version: "4.17.4", Ecosystem: "npm"}, []found{
			f("NSWG-ECO-368", "npm/lodash", "4.17.4", "4.17.5"),
			f("NSWG-ECO-493", "npm/lodash", "4.17.4", "4.17.11"),
		}},
		{"npm bounded range", inventory.Package{Name: "lodash", Version: "4.17.15", Ecosystem: "npm"},
			[]found{f("NSWG-ECO-516", "npm/lodash", "4.17.15", "4.17.19")}},
		{"npm patched", inventory.Package{Name: "lodash", Version: "4.17.19", Ecosystem: "npm"}, nil},
		{"npm x-range", inventory.Package{Name: "hapi", Version: "2.1.9", Ecosystem: "npm"},
			[]found{f("NSWG-ECO-11", "npm/hapi", "2.1.9", "2.2.0")}},
		{"npm x-range end", inventory.Package{Name: "hapi", Version: "2.2.0", Ecosystem: "npm"}, nil},
		{"npm exclusive lower bound", inventory.Package{Name: "mapbox.js", Version: "2.0.0", Ecosystem: "npm"}, nil},
		{"npm second set", inventory.Package{Name: "mapbox.js", Version: "2.1.6", Ecosystem: "npm"},
			[]found{f("NSWG-ECO-49", "npm/mapbox.js", "2.1.6", "2.1.7")}},
		{"npm first set", inventory.Package{Name: "mapbox.js", Version: "1.6.4", Ecosystem: "npm"},
			[]found{f("NSWG-ECO-49", "npm/mapbox.js", "1.6.4", "1.6.5")}},

		// AlmaLinux: binary package names, RPM versions with epochs, release must agree.
		{"rpm", inventory.Package{Name: "gupnp", Version: "1.0.6-1.el8", Type: inventory.TypeRPM, Ecosystem: "AlmaLinux:8"},
			[]found{f("ALSA-2021:2363", "AlmaLinux:8/gupnp", "1.0.6-1.el8", "1.0.6-2.el8_4")}},
		{"rpm other release", inventory.Package{Name: "gupnp", Version: "1.0.6-1.el8", Type: inventory.TypeRPM, Ecosystem: "AlmaLinux:9"}, nil},
		{"rpm binary name, point release", inventory.Package{Name: "gupnp-devel", Version: "1.0.6-1.el8", SourceName: "gupnp", Type: inventory.TypeRPM, Ecosystem: "AlmaLinux:8.4"},
			[]found{f("ALSA-2021:2363", "AlmaLinux:8/gupnp-devel", "1.0.6-1.el8", "1.0.6-2.el8_4")}},
		{"rpm epoch", inventory.Package{Name: "nginx-core", Version: "1:1.20.1-14.el9_2.1", Type: inventory.TypeRPM, Ecosystem: "AlmaLinux:9"},
			[]found{f("ALSA-2023:5711", "AlmaLinux:9/nginx-core", "1:1.20.1-14.el9_2.1", "1:1.20.1-14.el9_2.1.alma.1")}},
		{"rpm at fix", inventory.Package{Name: "nginx-core", Version: "1:1.20.1-14.el9_2.1.alma.1", Type: inventory.TypeRPM, Ecosystem: "AlmaLinux:9"}, nil},
		{"rpm newer epoch", inventory.Package{Name: "nginx-core", Version: "2:1.0-1.el9", Type: inventory.TypeRPM, Ecosystem: "AlmaLinux:9"}, nil},

		// Alpine secdb: source (origin) packages, "Alpine:v3.10".
		{"apk via origin", inventory.Package{Name: "libcrypto1.1", Version: "1.1.1c-r0", SourceName: "openssl", SourceVersion: "1.1.1c-r0", Type: inventory.TypeAPK, Ecosystem: "Alpine:v3.10"}, []found{
			f("CVE-2019-1547", "Alpine:v3.10/openssl (source package)", "1.1.1c-r0", "1.1.1d-r0"),
			f("CVE-2019-1549", "Alpine:v3.10/openssl (source package)", "1.1.1c-r0", "1.1.1d-r0"),
			f("CVE-2019-1563", "Alpine:v3.10/openssl (source package)", "1.1.1c-r0", "1.1.1d-r0"),
		}},
		{"apk release written as os-release does", inventory.Package{Name: "openssl", Version: "1.1.1c-r0", Type: inventory.TypeAPK, Ecosystem: "Alpine:3.10.2"}, []found{
			f("CVE-2019-1547", "Alpine:v3.10/openssl", "1.1.1c-r0", "1.1.1d-r0"),
			f("CVE-2019-1549", "Alpine:v3.10/openssl", "1.1.1c-r0", "1.1.1d-r0"),
			f("CVE-2019-1563", "Alpine:v3.10/openssl", "1.1.1c-r0", "1.1.1d-r0"),
		}},
		{"apk fixed", inventory.Package{Name: "openssl", Version: "1.1.1d-r0", Ecosystem: "Alpine:v3.10"}, nil},
		{"apk other branch", inventory.Package{Name: "openssl", Version: "1.1.1c-r0", Ecosystem: "Alpine:v3.11"}, nil},
		{"apk release unknown", inventory.Package{Name: "openssl", Version: "1.1.1c-r0", Ecosystem: "Alpine"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := db.Match(context.Background(), []inventory.Package{tc.pkg})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(ms)); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchEnrichment(t *testing.T) {
	db := importDirs(t, allTestdata...)
	pkgs := []inventory.Package{
		goMod("stdlib", "go1.13.6"),
		goMod("stdlib", "go1.22.3"),
		goMod("github.com/containerd/containerd", "v1.6.0"),
		{Name: "nginx-core", Version: "1:1.20.1-14.el9_2.1", Ecosystem: "AlmaLinux:9"},
		{Name: "smallvec", Version: "1.0.0", Ecosystem: "crates.io"},
		goMod("golang.org/x/text", "v0.3.7"),
	}
	ms, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Vulnerability{}
	for _, m := range ms {
		byID[m.Vulnerability.ID] = m.Vulnerability
	}
	type view struct {
		Severity Severity
		CVSS     []CVSS
		KEV      *KEV
		EPSS     float64
		Aliases  []string
		Related  []string
		Source   string
	}
	get := func(id string) view {
		v := byID[id]
		if v == nil {
			t.Fatalf("%s not matched; got %v", id, summarize(ms))
		}
		return view{v.Severity, v.CVSS, v.KEV, v.EPSS, v.Aliases, v.Related, v.Source}
	}
	kev44487 := &KEV{DateAdded: "2023-10-10", DueDate: "2023-10-31", RansomwareUse: "Unknown",
		RequiredAction: "Apply mitigations per vendor instructions, follow applicable BOD 22-01 guidance for cloud services, or discontinue use of the product if mitigations are unavailable."}
	tests := []struct {
		id   string
		want view
	}{
		// KEV through an alias; the CVE has no CVE 5 record in testdata.
		{"GO-2022-0535", view{Severity: SeverityUnknown, Aliases: []string{"CVE-2020-0601"}, Source: "go-vulndb",
			KEV: &KEV{DateAdded: "2021-11-03", DueDate: "2020-01-29", RansomwareUse: "Unknown", RequiredAction: "Apply updates per vendor instructions."}}},
		// No CVSS in the Go record: CISA ADP's vector from the CVE 5 record, severity from its score; EPSS from the CSV.
		{"GO-2024-2887", view{Severity: SeverityCritical, Aliases: []string{"CVE-2024-24790"}, Source: "go-vulndb", EPSS: 0.00139,
			CVSS: []CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8, Source: "cisa-adp"}}}},
		// Merged with GHSA-hmfx-3pcx-653p: its ID joins the aliases, its CVSS and rating fill the gaps.
		{"GO-2023-1574", view{Severity: SeverityMedium, Aliases: []string{"CVE-2023-25173", "GHSA-hmfx-3pcx-653p"}, Source: "go-vulndb",
			Related: []string{"CVE-2022-2989", "CVE-2022-2990", "CVE-2022-2995", "CVE-2022-36109", "GHSA-4wjj-jwc9-2x96", "GHSA-fjm8-m7m6-2fjp", "GHSA-phjr-8j92-w5v7", "GHSA-rc4r-wh2q-q6c4"},
			CVSS:    []CVSS{{Version: "3.0", Vector: "CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:L", Score: 5.3, Source: "osv"}}}},
		// AlmaLinux: the rating is the summary's "Moderate:" (the record's
		// own word wins over the 7.5 score); KEV/EPSS/CVSS come through the
		// CVE it lists as related.
		{"ALSA-2023:5711", view{Severity: SeverityMedium, Related: []string{"CVE-2023-44487"}, Source: "almalinux", KEV: kev44487, EPSS: 0.94436,
			CVSS: []CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Score: 7.5, Source: "cisa-adp"}}}},
		// Severity from the record's own CVSS vector.
		{"RUSTSEC-2021-0003", view{Severity: SeverityCritical, Aliases: []string{"CVE-2021-25900", "GHSA-43w2-9j62-hq99"}, Source: "rustsec",
			CVSS: []CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8, Source: "osv"}}}},
		{"GO-2022-1059", view{Severity: SeverityUnknown, Aliases: []string{"CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"}, Source: "go-vulndb", EPSS: 0.00412}},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, get(tc.id)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.id, diff)
			}
		})
	}
	// The Go record's own text is what is reported, not the GHSA's.
	if got := byID["GO-2023-1574"].Summary; got == "" || byID["GO-2023-1574"].Source != "go-vulndb" {
		t.Errorf("merged record lost its summary or source: %q", got)
	}
}

func TestMatchPackageIndexAndOrder(t *testing.T) {
	db := importDirs(t, "go-vulndb", "pypa")
	pkgs := []inventory.Package{
		{Name: "not-in-db", Version: "1.0", Ecosystem: "PyPI"},
		goMod("golang.org/x/text", "v0.3.7"),
		{Name: "urllib3", Version: "2.0.5", Ecosystem: "PyPI"},
		{Name: "no-version", Ecosystem: "PyPI"},
	}
	ms, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range ms {
		got = append(got, m.Package)
	}
	if diff := cmp.Diff([]int{1, 2}, got); diff != "" {
		t.Errorf("package indexes (-want +got):\n%s", diff)
	}
}

func TestMatchParallelSameAsSerial(t *testing.T) {
	db := importDirs(t, allTestdata...)
	var pkgs []inventory.Package
	for i := 0; i < 600; i++ {
		switch i % 4 {
		case 0:
			pkgs = append(pkgs, goMod("stdlib", "go1.21rc2"))
		case 1:
			pkgs = append(pkgs, inventory.Package{Name: "lodash", Version: "4.17.4", Ecosystem: "npm"})
		case 2:
			pkgs = append(pkgs, inventory.Package{Name: "nothing", Version: "1", Ecosystem: "npm"})
		case 3:
			pkgs = append(pkgs, inventory.Package{Name: "urllib3", Version: "1.17", Ecosystem: "PyPI"})
		}
	}
	all, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	var serial []Match
	for i := range pkgs {
		ms, err := db.Match(context.Background(), pkgs[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			m.Package = i
			serial = append(serial, m)
		}
	}
	if len(all) != 150*(3+2+4) {
		t.Errorf("got %d matches, want %d", len(all), 150*9)
	}
	if diff := cmp.Diff(serial, all); diff != "" {
		t.Errorf("parallel differs from serial (-serial +parallel):\n%s", diff)
	}
}

func TestMatchClosedAndCancelled(t *testing.T) {
	db := importDirs(t, "go-vulndb")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Match(ctx, []inventory.Package{goMod("stdlib", "1.0.0")}); err == nil {
		t.Error("Match with a cancelled context succeeded")
	}
	db.Close()
	if _, err := db.Match(context.Background(), nil); err != ErrClosed {
		t.Errorf("Match after Close: got %v, want ErrClosed", err)
	}
}
