package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// debianPackages reads the committed list of the packages installed on a
// real Debian 12 machine (internal/store/testdata).
func debianPackages(tb testing.TB) []inventory.Package {
	tb.Helper()
	f, err := os.Open("../store/testdata/debian12-packages.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []inventory.Package
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) != 5 {
			tb.Fatalf("bad line %q", line)
		}
		p := inventory.Package{Name: c[0], Version: c[1], Arch: c[2], Type: inventory.TypeDeb, Ecosystem: "Debian:12",
			PURL:     fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=debian-12", c[0], c[1], c[2]),
			Location: "var/lib/dpkg/status", Extractor: "os/dpkg"}
		if c[3] != c[0] || c[4] != c[1] {
			p.SourceName, p.SourceVersion = c[3], c[4]
		}
		out = append(out, p)
	}
	return out
}

// BenchmarkRematch10k measures continuous re-matching: the time from a
// vulnerability database update to every stored SBOM matched again and
// its findings replaced (with events for what changed), for 10,000
// stored images (BULWARK_BENCH_SBOMS overrides the count) on SQLite.
//
// The inventories are generated from committed real package lists: the
// bundled demo image's own inventory (its Go modules and npm packages,
// scanned here) and the 732 packages of a real Debian 12 machine. Each
// image takes a random (seeded) subset — 80-240 Debian packages, the Go
// binaries' modules, 40-173 npm packages — so images differ as a
// registry's do. They are stored with findings from the demo database
// without its Go advisories; the benchmark re-matches them against the
// full demo database, the update that adds the Go advisories.
//
// Setup (storing the SBOMs) is not timed; run with -benchtime=1x.
func BenchmarkRematch10k(b *testing.B) {
	n := 10_000
	if v := os.Getenv("BULWARK_BENCH_SBOMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("BULWARK_BENCH_SBOMS=%q", v)
		}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir()+"/bench.db", store.Options{SecretKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	full := importDB(b, advisoryFiles(b))
	srv, err := New(Config{Listen: "127.0.0.1:0", InsecureHTTP: true, Workers: -1, DBDir: full, RematchAll: true}, Deps{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	old, err := vulndb.Open(importDB(b, advisoryFiles(b, "golang")), vulndb.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer old.Close()

	demoRes, err := srv.scanner.Image(ctx, "docker-archive:"+demoImagePath(b), anonymousOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	var goPkgs, npmPkgs []inventory.Package
	for _, p := range demoRes.Packages {
		switch p.Ecosystem {
		case "Go":
			goPkgs = append(goPkgs, p)
		case "npm":
			npmPkgs = append(npmPkgs, p)
		}
	}
	deb := debianPackages(b)
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(from []inventory.Package, lo, hi int) []inventory.Package {
		k := min(lo+rng.IntN(hi-lo+1), len(from))
		idx := rng.Perm(len(from))[:k]
		out := make([]inventory.Package, 0, k)
		for _, i := range idx {
			out = append(out, from[i])
		}
		return out
	}
	setup := time.Now()
	pkgTotal := 0
	for i := range n {
		var pkgs []inventory.Package
		pkgs = append(pkgs, pick(deb, 80, 240)...)
		pkgs = append(pkgs, goPkgs...)
		pkgs = append(pkgs, pick(npmPkgs, 40, 173)...)
		pkgTotal += len(pkgs)
		h := sha256.Sum256([]byte("bench-image-" + strconv.Itoa(i)))
		res := &scan.Result{SchemaVersion: scan.SchemaVersion, Tool: demoRes.Tool, OS: demoRes.OS, Packages: pkgs,
			Target: scan.Target{Kind: "image", Name: fmt.Sprintf("registry.example.com/bench/app%d:1", i%100),
				Digest: "sha256:" + hex.EncodeToString(h[:])}, StartedAt: time.Now(), FinishedAt: time.Now()}
		if err := scan.Match(ctx, old, res); err != nil {
			b.Fatal(err)
		}
		if _, err := st.SaveScan(ctx, res, store.ScanMeta{TriggeredBy: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d SBOMs (%d packages on average) in %s", n, pkgTotal/n, time.Since(setup).Round(time.Second))
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rep, err := srv.Rematch(ctx, "benchmark")
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		if rep.Images != n || rep.Failed != 0 {
			b.Fatalf("re-matched %d of %d (%d failed: %s)", rep.Images, n, rep.Failed, rep.LastError)
		}
		b.ReportMetric(float64(rep.Images)/el.Seconds(), "images/s")
		b.ReportMetric(el.Seconds(), "s/rematch")
		b.Logf("re-matched %d images in %s: %d new, %d fixed, %d changed findings", rep.Images, el.Round(time.Millisecond),
			rep.NewFindings, rep.FixedFindings, rep.ChangedFindings)
	}
	b.StopTimer()
	// The common case, logged for comparison: a database update that
	// changes nothing for these images.
	start := time.Now()
	rep, err := srv.Rematch(ctx, "benchmark, unchanged")
	if err != nil || rep.NewFindings+rep.FixedFindings+rep.ChangedFindings != 0 {
		b.Fatalf("unchanged re-match: %+v, %v", rep, err)
	}
	b.Logf("re-matched %d images with nothing to change in %s (%.0f images/s)", rep.Images, time.Since(start).Round(time.Millisecond),
		float64(rep.Images)/time.Since(start).Seconds())
}

func anonymousOptions() image.Options { return image.Options{Keychain: anonymous{}} }
