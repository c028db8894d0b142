package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/importcheck"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	want, err := loadMigrations(migrationsFS, sqliteDialect.migrationDir)
	if err != nil {
		t.Fatal(err)
	}
	pgWant, err := loadMigrations(migrationsFS, postgresDialect.migrationDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(pgWant) {
		t.Fatalf("sqlite has %d migrations, postgres %d: each version must exist for both", len(want), len(pgWant))
	}
	latest := want[len(want)-1].version
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			// Replicas starting at once: every Open succeeds, each
			// migration is applied once.
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := Open(ctx, dsn, Options{})
					if err == nil {
						err = s.Close()
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("concurrent Open %d: %v", i, err)
				}
			}
			// And again, on an up-to-date schema.
			s := openStore(t, dsn, Options{})
			v, err := s.SchemaVersion(ctx)
			if err != nil || v != latest {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, latest)
			}
			var n int
			if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(want) {
				t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, len(want))
			}
			// Every table is usable.
			for _, table := range []string{"registries", "images", "image_refs", "image_sightings", "sboms", "image_packages",
				"scans", "findings", "finding_events", "clusters", "alerts", "policies", "api_tokens", "users", "audit_log", "jobs"} {
				if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
					t.Errorf("table %s: %v", table, err)
				}
			}
			// A database migrated by a newer binary is refused, not
			// silently used.
			if _, err := s.exec(ctx, s.w, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 'x')`, latest+100); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := Open(ctx, dsn, Options{}); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
				t.Fatalf("Open of a newer schema: err = %v", err)
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, ":memory:", Options{}); err == nil {
		t.Error("in-memory SQLite accepted")
	}
	if _, err := Open(ctx, t.TempDir()+"/x.db", Options{SecretKey: []byte("short")}); err == nil {
		t.Error("16-byte... short key accepted")
	}
	if _, err := Open(ctx, t.TempDir()+"/x.db", Options{SQLiteSynchronous: "OFF"}); err == nil {
		t.Error("synchronous=OFF accepted")
	}
}

func TestRegistries(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		creds := &Credentials{Username: "robot$ci", Password: "s3cr3t-registry-password", WebhookSecret: "hook-shared-secret"}
		r, err := s.CreateRegistry(ctx, Registry{Name: "harbor", URL: "https://harbor.example.com", Kind: RegistryHarbor,
			Repositories: []string{"team/*"}, Credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == 0 || !r.HasCredentials {
			t.Fatalf("created = %+v", r)
		}
		// Encrypted at rest: the raw column holds neither the password
		// nor any other secret, and is not the JSON either.
		var raw []byte
		if err := s.queryRow(ctx, s.r, `SELECT credentials FROM registries WHERE id = ?`, r.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{creds.Password, creds.WebhookSecret, creds.Username, "password"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("raw credentials column contains %q", secret)
			}
		}
		if len(raw) < 1+12+16 || raw[0] != sealVersion {
			t.Errorf("raw credentials %x do not look sealed", raw)
		}
		got, err := s.GetRegistry(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(creds, got.Credentials); diff != "" {
			t.Errorf("decrypted credentials (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"team/*"}, got.Repositories); diff != "" {
			t.Errorf("repositories: %s", diff)
		}
		list, err := s.ListRegistries(ctx)
		if err != nil || len(list) != 1 || list[0].Credentials != nil || !list[0].HasCredentials {
			t.Fatalf("ListRegistries = %+v, %v (want one, credentials withheld)", list, err)
		}

		// A second registry; its ciphertext moved into the first row must
		// not decrypt (bound to the name).
		r2, err := s.CreateRegistry(ctx, Registry{Name: "dist", URL: "http://127.0.0.1:5000", Kind: RegistryDistribution,
			Credentials: &Credentials{Password: "other"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.exec(ctx, s.w, `UPDATE registries SET credentials = (SELECT credentials FROM registries WHERE id = ?) WHERE id = ?`, r2.ID, r.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRegistry(ctx, r.ID); err == nil {
			t.Error("ciphertext of another registry decrypted")
		}

		// Update: rename, drop credentials.
		got.Name, got.Credentials, got.Insecure = "harbor-2", nil, true
		if err := s.UpdateRegistry(ctx, *got); err != nil {
			t.Fatal(err)
		}
		got2, err := s.GetRegistryByName(ctx, "harbor-2")
		if err != nil || got2.HasCredentials || !got2.Insecure {
			t.Fatalf("after update: %+v, %v", got2, err)
		}
		if err := s.RecordSweep(ctx, r.ID, time.Now(), "401 unauthorized"); err != nil {
			t.Fatal(err)
		}
		if g, _ := s.GetRegistry(ctx, r.ID); g.LastSweepError != "401 unauthorized" || g.LastSweepAt.IsZero() {
			t.Errorf("sweep not recorded: %+v", g)
		}

		// Errors.
		if _, err := s.CreateRegistry(ctx, Registry{Name: "dist", URL: "https://x", Kind: RegistryGeneric}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate name: %v, want ErrConflict", err)
		}
		for _, bad := range []Registry{
			{Name: "k", URL: "https://x", Kind: "quay"},
			{Name: "", URL: "https://x", Kind: RegistryGeneric},
			{Name: "u", URL: "ftp://x", Kind: RegistryGeneric},
			{Name: "u", URL: "not a url", Kind: RegistryGeneric},
		} {
			if _, err := s.CreateRegistry(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateRegistry(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		if err := s.DeleteRegistry(ctx, r2.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRegistry(ctx, r2.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted registry: %v, want ErrNotFound", err)
		}
		if err := s.DeleteRegistry(ctx, r2.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v, want ErrNotFound", err)
		}
	})
}

func TestRegistryWithoutKey(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			s := openStore(t, dsn, Options{SecretKey: testKey})
			r, err := s.CreateRegistry(ctx, Registry{Name: "r", URL: "https://r", Kind: RegistryGeneric, Credentials: &Credentials{Password: "p"}})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			nokey := openStore(t, dsn, Options{})
			if _, err := nokey.GetRegistry(ctx, r.ID); !errors.Is(err, ErrNoSecretKey) {
				t.Errorf("get without key: %v, want ErrNoSecretKey", err)
			}
			if _, err := nokey.CreateRegistry(ctx, Registry{Name: "q", URL: "https://q", Kind: RegistryGeneric, Credentials: &Credentials{Password: "p"}}); !errors.Is(err, ErrNoSecretKey) {
				t.Errorf("create without key: %v, want ErrNoSecretKey", err)
			}
			if _, err := nokey.CreateRegistry(ctx, Registry{Name: "q", URL: "https://q", Kind: RegistryGeneric}); err != nil {
				t.Errorf("create without credentials and key: %v", err)
			}
			other := openStore(t, dsn, Options{SecretKey: bytes.Repeat([]byte{7}, 32)})
			if _, err := other.GetRegistry(ctx, r.ID); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
				t.Errorf("get with the wrong key: %v", err)
			}
		})
	}
}

func TestSaveScan(t *testing.T) {
	ctx := context.Background()
	f := fix(t)
	forEach(t, func(t *testing.T, s *Store) {
		clk := newClock()
		s.now = clk.Now
		res := f.result("web", 300, 40, 0)
		saved, err := s.SaveScan(ctx, res, ScanMeta{TriggeredBy: "ci:pipeline"})
		if err != nil {
			t.Fatal(err)
		}
		if len(saved.Diff.New) != 40 || len(saved.Diff.Fixed) != 0 || saved.Diff.Unchanged != 0 {
			t.Fatalf("first scan diff: new %d fixed %d unchanged %d", len(saved.Diff.New), len(saved.Diff.Fixed), saved.Diff.Unchanged)
		}
		digest := res.Target.Digest

		im, err := s.GetImage(ctx, digest)
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := FindingCounts{Critical: 10, High: 10, Medium: 10, Low: 10, KEV: 8, Fixable: 14}
		if diff := cmp.Diff(wantCounts, im.Counts); diff != "" {
			t.Errorf("counts (-want +got):\n%s", diff)
		}
		if im.PackageCount != 300 || im.OS != "debian 12" || im.ConfigDigest != res.Target.ImageID || len(im.Layers) != 1 {
			t.Errorf("image = %+v", im)
		}
		if len(im.Refs) != 1 || im.Refs[0].String() != "registry.example.com/team/web:1.0" {
			t.Errorf("refs = %+v", im.Refs)
		}

		// The SBOM round-trips exactly.
		sb, err := s.GetSBOM(ctx, digest)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(res.Packages, sb.Packages); diff != "" {
			t.Errorf("SBOM packages (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(res.OS, sb.OS); diff != "" {
			t.Errorf("SBOM OS: %s", diff)
		}
		if sb.Tool.Extractors["os/dpkg"] != 1 {
			t.Errorf("SBOM tool = %+v", sb.Tool)
		}
		// Stored compactly: compressed, and much smaller than the JSON.
		var blob []byte
		if err := s.queryRow(ctx, s.r, `SELECT data FROM sboms`).Scan(&blob); err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(res.Packages)
		if len(blob)*3 > len(js) {
			t.Errorf("SBOM blob %d bytes for %d bytes of JSON: not compressed", len(blob), len(js))
		}

		// "Which images have package X" through the package index.
		p := res.Packages[17]
		imgs, total, err := s.ListImages(ctx, ImageFilter{Package: p.Name, PackageEcosystem: "Debian:12", PackageVersion: p.Version}, Page{})
		if err != nil || total != 1 || imgs[0].Digest != digest {
			t.Errorf("images with %s: %d, %v", p.Name, total, err)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Package: p.Name, PackageVersion: "0:not-installed"}, Page{}); total != 0 {
			t.Errorf("images with a version not installed: %d", total)
		}

		// Second scan a day later: findings 0-9 gone (fixed), 40-49 new,
		// finding 10 changes severity, 11 gets KEV, 12 gets a fix.
		clk.Advance(24 * time.Hour)
		res2 := f.result("web", 300, 50, 0)
		res2.Findings = slices.Clone(res2.Findings[10:])
		for i := range res2.Findings {
			v := *res2.Findings[i].Vulnerability
			res2.Findings[i].Vulnerability = &v
		}
		res2.Findings[0].Vulnerability.Severity = vulndb.SeverityCritical
		if res2.Findings[0].Vulnerability.Severity == res.Findings[10].Vulnerability.Severity {
			t.Fatal("fixture: severity did not change")
		}
		res2.Findings[1].Vulnerability.KEV = &vulndb.KEV{DateAdded: "2026-03-02"}
		res2.Findings[2].FixedVersions = []string{"9:9.9"}
		saved2, err := s.SaveScan(ctx, res2, ScanMeta{TriggeredBy: "rescan"})
		if err != nil {
			t.Fatal(err)
		}
		d := saved2.Diff
		ids := func(es []FindingEvent) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.VulnID)
			}
			slices.Sort(out)
			return out
		}
		wantFixed, wantNew := []string{}, []string{}
		for i := range 10 {
			wantFixed = append(wantFixed, f.kev[i].CVEID)
			wantNew = append(wantNew, f.kev[40+i].CVEID)
		}
		slices.Sort(wantFixed)
		slices.Sort(wantNew)
		if diff := cmp.Diff(wantFixed, ids(d.Fixed)); diff != "" {
			t.Errorf("fixed (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantNew, ids(d.New)); diff != "" {
			t.Errorf("new (-want +got):\n%s", diff)
		}
		wantChanged := []string{f.kev[10].CVEID, f.kev[11].CVEID, f.kev[12].CVEID}
		slices.Sort(wantChanged)
		if diff := cmp.Diff(wantChanged, ids(d.Changed)); diff != "" {
			t.Errorf("changed (-want +got):\n%s", diff)
		}
		if d.Unchanged != 27 {
			t.Errorf("unchanged = %d, want 27", d.Unchanged)
		}

		// Fixed findings stay as history with resolved_at; open lists omit them.
		open, total, err := s.ListFindings(ctx, FindingFilter{ImageDigest: digest}, Page{Limit: 1000})
		if err != nil || total != 40 || len(open) != 40 {
			t.Fatalf("open findings = %d/%d, %v; want 40", len(open), total, err)
		}
		all, total, err := s.ListFindings(ctx, FindingFilter{ImageDigest: digest, IncludeResolved: true}, Page{Limit: 1000})
		if err != nil || total != 50 {
			t.Fatalf("all findings = %d, %v; want 50", total, err)
		}
		for _, fd := range all {
			fixed := slices.Contains(wantFixed, fd.VulnID)
			if fixed == fd.ResolvedAt.IsZero() {
				t.Errorf("finding %s resolved_at = %v (fixed: %v)", fd.VulnID, fd.ResolvedAt, fixed)
			}
			if !fixed && fd.VulnID == f.kev[20].CVEID && !fd.FirstSeen.Before(fd.LastSeen) {
				t.Errorf("unchanged finding: first_seen %v should precede last_seen %v", fd.FirstSeen, fd.LastSeen)
			}
		}
		// Events are queryable, per scan.
		evs, total, err := s.ListFindingEvents(ctx, EventFilter{ImageDigest: digest, Kind: EventFixed}, Page{})
		if err != nil || total != 10 {
			t.Fatalf("fixed events = %d, %v", total, err)
		}
		if evs[0].ScanID != saved2.ScanID || evs[0].Source != SourceScan || evs[0].ID == 0 {
			t.Errorf("event = %+v (scan %d)", evs[0], saved2.ScanID)
		}
		if _, total, _ := s.ListFindingEvents(ctx, EventFilter{}, Page{}); total != 40+10+10+3 {
			t.Errorf("all events = %d, want 63", total)
		}

		// A finding fixed and then found again is "new" again.
		d3, err := s.ReplaceFindings(ctx, digest, res.Findings[:1], SourceRematch)
		if err != nil {
			t.Fatal(err)
		}
		if len(d3.New) != 1 || d3.New[0].VulnID != f.kev[0].CVEID || len(d3.Fixed) != 40 || d3.New[0].Source != SourceRematch {
			t.Errorf("rematch diff: new %v fixed %d", ids(d3.New), len(d3.Fixed))
		}
		im, _ = s.GetImage(ctx, digest)
		if im.Counts.Total() != 1 {
			t.Errorf("counts after rematch = %+v", im.Counts)
		}

		// Scan history.
		scans, total, err := s.ListScans(ctx, ScanFilter{ImageDigest: digest}, Page{})
		if err != nil || total != 2 {
			t.Fatalf("scans = %d, %v", total, err)
		}
		if scans[0].ID != saved2.ScanID || scans[0].NewFindings != 10 || scans[0].FixedFindings != 10 ||
			scans[0].FindingCount != 40 || scans[0].Duration != 3*time.Second || scans[0].TriggeredBy != "rescan" {
			t.Errorf("latest scan = %+v", scans[0])
		}
		if _, err := s.RecordScan(ctx, ScanRecord{ImageDigest: digestOf("nope"), Status: ScanFailed, Error: "manifest unknown"}); err != nil {
			t.Fatal(err)
		}
		if _, total, _ := s.ListScans(ctx, ScanFilter{Status: ScanFailed}, Page{}); total != 1 {
			t.Errorf("failed scans = %d", total)
		}

		// Bad input.
		bad := f.result("bad", 5, 1, 0)
		bad.Target.Digest = "latest"
		if _, err := s.SaveScan(ctx, bad, ScanMeta{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad digest: %v", err)
		}
		bad = f.result("bad", 5, 1, 0)
		bad.Findings[0].Vulnerability = &vulndb.Vulnerability{ID: "CVE-1", Severity: 9}
		if _, err := s.SaveScan(ctx, bad, ScanMeta{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad severity: %v", err)
		}
		if _, err := s.ReplaceFindings(ctx, digestOf("unknown"), nil, SourceRematch); !errors.Is(err, ErrNotFound) {
			t.Errorf("replace on unknown image: %v", err)
		}
		if _, err := s.ReplaceFindings(ctx, digest, nil, "cron"); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad source: %v", err)
		}
		if _, err := s.RecordScan(ctx, ScanRecord{Status: "ok"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad scan status: %v", err)
		}

		// Deleting the image removes its SBOM, findings and events.
		if err := s.DeleteImage(ctx, digest); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"sboms", "image_packages", "findings", "finding_events", "image_refs"} {
			var n int
			if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s after delete: %d rows, %v", table, n, err)
			}
		}
	})
}

func TestSightingsAndRefs(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		d := digestOf("running")
		ref, err := ParseImageRef("nginx:1.25")
		if err != nil || ref.Registry != "index.docker.io" || ref.Repository != "library/nginx" || ref.Tag != "1.25" {
			t.Fatalf("ParseImageRef = %+v, %v", ref, err)
		}
		if err := s.RecordImageRef(ctx, d, ref, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordSighting(ctx, d, Sighting{Cluster: "prod", Namespace: "web", Workload: "Deployment/nginx"}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordSighting(ctx, d, Sighting{Cluster: "prod", Namespace: "web", Workload: "Deployment/nginx"}); err != nil {
			t.Fatal(err)
		}
		im, err := s.GetImage(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Sightings) != 1 || im.Sightings[0].Workload != "Deployment/nginx" || len(im.Refs) != 1 {
			t.Errorf("image = %+v", im)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Cluster: "prod", Namespace: "web"}, Page{}); total != 1 {
			t.Errorf("images in prod/web = %d", total)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Cluster: "staging"}, Page{}); total != 0 {
			t.Errorf("images in staging = %d", total)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Repository: "library/nginx", Tag: "1.25"}, Page{}); total != 1 {
			t.Errorf("images by repository = %d", total)
		}
		if err := s.RecordSighting(ctx, "sha256:zz", Sighting{Cluster: "c"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad digest: %v", err)
		}
		if err := s.RecordSighting(ctx, d, Sighting{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("no cluster: %v", err)
		}
	})
}

func TestListImagesPaging(t *testing.T) {
	ctx := context.Background()
	f := fix(t)
	forEach(t, func(t *testing.T, s *Store) {
		const n = 23
		for i := range n {
			// Image i has i findings (severity cycles).
			if _, err := s.SaveScan(ctx, f.result(fmt.Sprintf("app-%02d", i), 40, i, i), ScanMeta{}); err != nil {
				t.Fatal(err)
			}
		}
		var seen []string
		prev := 1 << 30
		for off := 0; ; off += 5 {
			page, total, err := s.ListImages(ctx, ImageFilter{}, Page{Limit: 5, Offset: off, Sort: "-findings"})
			if err != nil {
				t.Fatal(err)
			}
			if total != n {
				t.Fatalf("total = %d, want %d", total, n)
			}
			if len(page) == 0 {
				break
			}
			for _, im := range page {
				if im.Counts.Total() > prev {
					t.Errorf("not sorted by -findings: %d after %d", im.Counts.Total(), prev)
				}
				prev = im.Counts.Total()
				seen = append(seen, im.Digest)
			}
		}
		slices.Sort(seen)
		if len(seen) != n || len(slices.Compact(seen)) != n {
			t.Errorf("paging returned %d images (%d distinct), want %d", len(seen), len(slices.Compact(seen)), n)
		}
		// Ascending by digest is the inverse of descending.
		asc, _, _ := s.ListImages(ctx, ImageFilter{}, Page{Limit: 100, Sort: "digest"})
		desc, _, _ := s.ListImages(ctx, ImageFilter{}, Page{Limit: 100, Sort: "-digest"})
		if len(asc) != n || asc[0].Digest != desc[n-1].Digest || !slices.IsSortedFunc(asc, func(a, b Image) int { return strings.Compare(a.Digest, b.Digest) }) {
			t.Error("digest sort is not total")
		}
		// Filters.
		_, critical, _ := s.ListImages(ctx, ImageFilter{MinSeverity: vulndb.SeverityCritical}, Page{})
		_, high, _ := s.ListImages(ctx, ImageFilter{MinSeverity: vulndb.SeverityHigh}, Page{})
		_, kev, _ := s.ListImages(ctx, ImageFilter{KEV: true}, Page{})
		if critical == 0 || critical >= n || high < critical || kev == 0 || kev >= n {
			t.Errorf("filters: critical %d high %d kev %d of %d", critical, high, kev, n)
		}
		page, total, err := s.ListImages(ctx, ImageFilter{Query: "app-07"}, Page{})
		if err != nil || total != 1 || !strings.Contains(fmt.Sprint(page[0].Digest), page[0].Digest) {
			t.Errorf("query app-07: %d, %v", total, err)
		}
		// LIKE wildcards in user text are literal.
		if _, total, _ := s.ListImages(ctx, ImageFilter{Query: "%"}, Page{}); total != 0 {
			t.Errorf("query %%: %d matches, want 0", total)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Query: "APP_0"}, Page{}); total != 0 {
			t.Errorf("query APP_0: %d matches, want 0 (_ is literal)", total)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Query: "APP-0"}, Page{}); total != 10 {
			t.Errorf("query APP-0 (case-insensitive): %d, want 10", total)
		}
		// Past the end: no rows, total still right.
		if page, total, err := s.ListImages(ctx, ImageFilter{}, Page{Offset: 1000}); err != nil || len(page) != 0 || total != n {
			t.Errorf("past the end: %d, %d, %v", len(page), total, err)
		}
		// Sort keys are whitelisted, never SQL.
		for _, bad := range []string{"digest; DROP TABLE images", "id", "-", "critical DESC", "images.digest"} {
			if _, _, err := s.ListImages(ctx, ImageFilter{}, Page{Sort: bad}); !errors.Is(err, ErrInvalid) {
				t.Errorf("sort %q: %v, want ErrInvalid", bad, err)
			}
		}
		if _, _, err := s.ListImages(ctx, ImageFilter{MinSeverity: 7}, Page{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("severity 7: %v", err)
		}
		// Findings across images, sorted and filtered.
		fs, total, err := s.ListFindings(ctx, FindingFilter{MinSeverity: vulndb.SeverityHigh, Fixable: true}, Page{Sort: "-cvss", Limit: 1000})
		if err != nil || total == 0 || len(fs) != total {
			t.Fatalf("findings: %d, %v", total, err)
		}
		for i, fd := range fs {
			if fd.Severity < vulndb.SeverityHigh || !fd.Fixable() || (i > 0 && fd.CVSSScore > fs[i-1].CVSSScore) {
				t.Fatalf("finding %d = %+v breaks the filter or order", i, fd)
			}
		}
		// Vulnerability detail: which images it affects.
		cve := f.kev[5].CVEID
		fs, total, _ = s.ListFindings(ctx, FindingFilter{VulnID: cve}, Page{})
		if total == 0 {
			t.Errorf("no images affected by %s", cve)
		}
		for _, fd := range fs {
			if fd.VulnID != cve {
				t.Errorf("VulnID filter returned %s", fd.VulnID)
			}
		}
		if _, _, err := s.ListFindings(ctx, FindingFilter{}, Page{Sort: "severity;"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad finding sort: %v", err)
		}
	})
}

func TestFindingAliases(t *testing.T) {
	ctx := context.Background()
	f := fix(t)
	forEach(t, func(t *testing.T, s *Store) {
		res := f.result("alias", 10, 1, 0)
		res.Findings[0].Vulnerability.ID = "GHSA-jfh8-c2jp-5v3q"
		res.Findings[0].Vulnerability.Aliases = []string{"CVE-2021-44228"}
		if _, err := s.SaveScan(ctx, res, ScanMeta{}); err != nil {
			t.Fatal(err)
		}
		fs, total, err := s.ListFindings(ctx, FindingFilter{VulnID: "CVE-2021-44228"}, Page{})
		if err != nil || total != 1 || fs[0].VulnID != "GHSA-jfh8-c2jp-5v3q" || !slices.Equal(fs[0].Aliases, []string{"CVE-2021-44228"}) {
			t.Errorf("by alias: %+v, %v", fs, err)
		}
		if _, total, _ := s.ListFindings(ctx, FindingFilter{VulnID: "CVE-2021-4422"}, Page{}); total != 0 {
			t.Errorf("alias prefix matched %d", total)
		}
	})
}

func TestClusters(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		c, err := s.UpsertCluster(ctx, Cluster{Name: "prod", Labels: map[string]string{"env": "prod"}, AgentVersion: "0.1"})
		if err != nil {
			t.Fatal(err)
		}
		c2, err := s.UpsertCluster(ctx, Cluster{Name: "prod", Description: "main", AgentVersion: "0.2"})
		if err != nil || c2.ID != c.ID || c2.AgentVersion != "0.2" || c2.Description != "main" {
			t.Fatalf("upsert again = %+v, %v", c2, err)
		}
		if _, err := s.UpsertCluster(ctx, Cluster{Name: "dev"}); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchCluster(ctx, "dev"); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListClusters(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "dev" {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if err := s.TouchCluster(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("touch unknown: %v", err)
		}
		if err := s.DeleteCluster(ctx, "dev"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetCluster(ctx, "dev"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted cluster: %v", err)
		}
		if _, err := s.UpsertCluster(ctx, Cluster{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty name: %v", err)
		}
	})
}

func TestAlerts(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		a := Alert{Fingerprint: "fp-1", Source: AlertSensor, Rule: "Terminal shell in container", Severity: alerts.SeverityHigh,
			Cluster: "prod", Namespace: "web", Workload: "Deployment/web", Evidence: json.RawMessage(`{"proc":"bash"}`)}
		t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		first, created, err := s.RecordAlert(ctx, a, t0)
		if err != nil || !created || first.Count != 1 || first.Status != AlertNew {
			t.Fatalf("first = %+v, %v, %v", first, created, err)
		}
		a.Evidence = json.RawMessage(`{"proc":"sh"}`)
		again, created, err := s.RecordAlert(ctx, a, t0.Add(time.Minute))
		if err != nil || created || again.ID != first.ID || again.Count != 2 || !again.LastSeen.Equal(t0.Add(time.Minute)) {
			t.Fatalf("repeat = %+v, %v, %v", again, created, err)
		}
		if !strings.Contains(string(again.Evidence), "sh") {
			t.Errorf("evidence not updated: %s", again.Evidence)
		}
		if err := s.SetAlertStatus(ctx, first.ID, AlertAcknowledged, "user:alice", "looking"); err != nil {
			t.Fatal(err)
		}
		// Acknowledged is still open: repeats still count.
		if a3, created, _ := s.RecordAlert(ctx, a, t0.Add(2*time.Minute)); created || a3.Count != 3 || a3.Status != AlertAcknowledged || a3.StatusBy != "user:alice" {
			t.Errorf("repeat while acknowledged = %+v created=%v", a3, created)
		}
		if err := s.SetAlertStatus(ctx, first.ID, AlertResolved, "user:alice", "fixed"); err != nil {
			t.Fatal(err)
		}
		// Resolved: the next occurrence is a new alert.
		a4, created, err := s.RecordAlert(ctx, a, t0.Add(3*time.Minute))
		if err != nil || !created || a4.ID == first.ID {
			t.Fatalf("after resolve = %+v, %v, %v", a4, created, err)
		}
		// Reopening the old one while a new one is open conflicts.
		if err := s.SetAlertStatus(ctx, first.ID, AlertNew, "user:bob", ""); !errors.Is(err, ErrConflict) {
			t.Errorf("reopen with an open duplicate: %v, want ErrConflict", err)
		}
		if _, _, err := s.RecordAlert(ctx, Alert{Fingerprint: "x", Source: AlertAudit, Rule: "r", Severity: alerts.SeverityCritical}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		list, total, err := s.ListAlerts(ctx, AlertFilter{Status: AlertNew}, Page{Sort: "-severity"})
		if err != nil || total != 2 || list[0].Severity != alerts.SeverityCritical {
			t.Errorf("new alerts = %+v (%d), %v", list, total, err)
		}
		if _, total, _ := s.ListAlerts(ctx, AlertFilter{Source: AlertSensor, Cluster: "prod"}, Page{}); total != 2 {
			t.Errorf("sensor alerts in prod = %d", total)
		}
		got, err := s.GetAlert(ctx, first.ID)
		if err != nil || got.Status != AlertResolved || got.StatusNote != "fixed" || got.StatusAt.IsZero() {
			t.Errorf("get = %+v, %v", got, err)
		}
		// Invalid enumerations are refused with a clear error.
		for name, bad := range map[string]Alert{
			"source":   {Fingerprint: "f", Source: "kernel", Rule: "r"},
			"severity": {Fingerprint: "f", Source: AlertSensor, Rule: "r", Severity: 5},
			"evidence": {Fingerprint: "f", Source: AlertSensor, Rule: "r", Evidence: json.RawMessage(`{nope`)},
			"rule":     {Fingerprint: "f", Source: AlertSensor},
		} {
			if _, _, err := s.RecordAlert(ctx, bad, time.Time{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if err := s.SetAlertStatus(ctx, first.ID, "closed", "u", ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "false_positive") {
			t.Errorf("bad status: %v", err)
		}
		if _, _, err := s.ListAlerts(ctx, AlertFilter{Status: "open"}, Page{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad status filter: %v", err)
		}
		// The database's own CHECK constraints back the Go checks.
		if _, err := s.exec(ctx, s.w, `UPDATE alerts SET status = 'closed' WHERE id = ?`, first.ID); err == nil {
			t.Error("database accepted status 'closed'")
		}
	})
}

func TestPolicies(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		p1, err := s.PutPolicy(ctx, "default", "rules: []\n", "user:alice")
		if err != nil || p1.Version != 1 {
			t.Fatalf("put = %+v, %v", p1, err)
		}
		p2, err := s.PutPolicy(ctx, "default", "rules: [{deny: critical}]\n", "user:bob")
		if err != nil || p2.Version != 2 {
			t.Fatalf("put again = %+v, %v", p2, err)
		}
		if _, err := s.PutPolicy(ctx, "strict", "x: 1\n", ""); err != nil {
			t.Fatal(err)
		}
		latest, err := s.GetPolicy(ctx, "default", 0)
		if err != nil || latest.Version != 2 || latest.CreatedBy != "user:bob" {
			t.Errorf("latest = %+v, %v", latest, err)
		}
		old, err := s.GetPolicy(ctx, "default", 1)
		if err != nil || old.YAML != "rules: []\n" {
			t.Errorf("v1 = %+v, %v", old, err)
		}
		list, err := s.ListPolicies(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "default" || list[0].Version != 2 {
			t.Errorf("list = %+v, %v", list, err)
		}
		if _, err := s.GetPolicy(ctx, "default", 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing version: %v", err)
		}
		if err := s.DeletePolicy(ctx, "default"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPolicy(ctx, "default", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted: %v", err)
		}
	})
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		clk := newClock()
		s.now = clk.Now
		secret, tok, err := s.CreateToken(ctx, "gitlab-ci", RoleCI, clk.Now().Add(24*time.Hour), "user:admin")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < 40 || !strings.HasPrefix(secret, tok.Prefix) {
			t.Fatalf("secret %q prefix %q", secret, tok.Prefix)
		}
		// Only the hash is stored: no column holds the secret or its
		// random part.
		var prefix, role string
		var hash []byte
		if err := s.queryRow(ctx, s.r, `SELECT prefix, hash, role FROM api_tokens WHERE id = ?`, tok.ID).Scan(&prefix, &hash, &role); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(prefix+role+string(hash), secret[len(tok.Prefix):]) || len(hash) != 32 || !bytes.Equal(hash, hashToken(secret)) {
			t.Errorf("stored token row leaks or is not SHA-256: prefix %q hash %x", prefix, hash)
		}
		got, err := s.VerifyToken(ctx, secret)
		if err != nil || got.ID != tok.ID || got.Role != RoleCI || got.LastUsedAt.IsZero() {
			t.Fatalf("verify = %+v, %v", got, err)
		}
		for _, bad := range []string{"", "bwk_", secret + "x", secret[:len(secret)-1], strings.ToUpper(secret), "Bearer " + secret} {
			if _, err := s.VerifyToken(ctx, bad); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("verify %q: %v, want ErrUnauthorized", bad, err)
			}
		}
		// Expiry.
		clk.Advance(25 * time.Hour)
		if _, err := s.VerifyToken(ctx, secret); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("expired token: %v", err)
		}
		// Revocation.
		secret2, tok2, err := s.CreateToken(ctx, "sensor", RoleAgent, time.Time{}, "user:admin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyToken(ctx, secret2); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, tok2.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyToken(ctx, secret2); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("revoked token: %v", err)
		}
		if err := s.RevokeToken(ctx, tok2.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke twice: %v", err)
		}
		list, err := s.ListTokens(ctx)
		if err != nil || len(list) != 2 || list[0].RevokedAt.IsZero() {
			t.Errorf("list = %+v, %v", list, err)
		}
		if _, _, err := s.CreateToken(ctx, "x", "root", time.Time{}, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "analyst") {
			t.Errorf("bad role: %v", err)
		}
	})
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		if n, err := s.CountUsers(ctx); err != nil || n != 0 {
			t.Fatalf("CountUsers = %d, %v", n, err)
		}
		u, err := s.CreateUser(ctx, "alice", "correct horse battery", RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		var hash string
		if err := s.queryRow(ctx, s.r, `SELECT password_hash FROM users WHERE id = ?`, u.ID).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$") || strings.Contains(hash, "horse") {
			t.Errorf("stored hash %q", hash)
		}
		got, err := s.Authenticate(ctx, "alice", "correct horse battery")
		if err != nil || got.ID != u.ID || got.LastLoginAt.IsZero() {
			t.Fatalf("authenticate = %+v, %v", got, err)
		}
		for _, c := range [][2]string{{"alice", "wrong horse battery"}, {"alice", ""}, {"bob", "correct horse battery"}, {"ALICE", "correct horse battery"}} {
			if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("authenticate %v: %v", c, err)
			}
		}
		if err := s.SetPassword(ctx, "alice", "a new long password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, "alice", "correct horse battery"); !errors.Is(err, ErrUnauthorized) {
			t.Error("old password still works")
		}
		if _, err := s.Authenticate(ctx, "alice", "a new long password"); err != nil {
			t.Error(err)
		}
		if err := s.UpdateUser(ctx, "alice", RoleAnalyst, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, "alice", "a new long password"); !errors.Is(err, ErrUnauthorized) {
			t.Error("disabled user authenticated")
		}
		if g, _ := s.GetUser(ctx, "alice"); g.Role != RoleAnalyst || !g.Disabled {
			t.Errorf("after update: %+v", g)
		}
		if _, err := s.CreateUser(ctx, "alice", "another password", RoleAdmin); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate user: %v", err)
		}
		if _, err := s.CreateUser(ctx, "carol", "short", RoleAdmin); !errors.Is(err, ErrInvalid) {
			t.Errorf("short password: %v", err)
		}
		if _, err := s.CreateUser(ctx, "carol", "long enough password", "superuser"); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad role: %v", err)
		}
		if list, err := s.ListUsers(ctx); err != nil || len(list) != 1 {
			t.Errorf("list = %+v, %v", list, err)
		}
	})
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		for i := range 12 {
			actor := "user:alice"
			if i%3 == 0 {
				actor = "token:ci"
			}
			if _, err := s.Audit(ctx, AuditEntry{At: t0.Add(time.Duration(i) * time.Hour), Actor: actor, Action: "registry.create",
				Target: fmt.Sprintf("registry/%d", i), Details: json.RawMessage(`{"url":"https://r"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		list, total, err := s.ListAudit(ctx, AuditFilter{Actor: "token:ci"}, Page{})
		if err != nil || total != 4 || !list[0].At.Equal(t0.Add(9*time.Hour)) {
			t.Fatalf("by actor: %d, %+v, %v", total, list, err)
		}
		var d map[string]string
		if err := json.Unmarshal(list[0].Details, &d); err != nil || d["url"] != "https://r" {
			t.Errorf("details %s: %v", list[0].Details, err)
		}
		if _, total, _ := s.ListAudit(ctx, AuditFilter{Since: t0.Add(6 * time.Hour), Until: t0.Add(8 * time.Hour)}, Page{}); total != 2 {
			t.Errorf("time window: %d, want 2", total)
		}
		if _, err := s.Audit(ctx, AuditEntry{Actor: "a", Action: "x", Details: json.RawMessage(`{`)}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad details: %v", err)
		}
		if _, err := s.Audit(ctx, AuditEntry{Action: "x"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("no actor: %v", err)
		}
	})
}

// TestRebind checks the placeholder rewriting used for PostgreSQL.
func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                            `SELECT 1`,
		`a = ? AND b = ?`:                     `a = $1 AND b = $2`,
		`x LIKE '?' AND y = ? AND "q?" = ?`:   `x LIKE '?' AND y = $1 AND "q?" = $2`,
		`INSERT INTO t VALUES (?, ?), (?, ?)`: `INSERT INTO t VALUES ($1, $2), ($3, $4)`,
		`a = 'it''s ?' AND b = ?`:             `a = 'it''s ?' AND b = $1`,
	} {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSealOpen(t *testing.T) {
	sealed, err := seal(testKey, []byte("pw"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := open(testKey, sealed, []byte("a")); err != nil || string(pt) != "pw" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	sealed2, _ := seal(testKey, []byte("pw"), []byte("a"))
	if bytes.Equal(sealed, sealed2) {
		t.Error("two seals of the same value are equal (nonce reuse?)")
	}
	for name, c := range map[string][]byte{
		"truncated": sealed[:10],
		"flipped":   append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1),
		"version":   append([]byte{9}, sealed[1:]...),
		"empty":     nil,
	} {
		if _, err := open(testKey, c, []byte("a")); err == nil {
			t.Errorf("%s ciphertext opened", name)
		}
	}
	if _, err := open(testKey, sealed, []byte("b")); err == nil {
		t.Error("opened with the wrong associated data")
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("hunter2hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if !checkPassword(h, "hunter2hunter2") || checkPassword(h, "hunter2hunter3") {
		t.Fatal("checkPassword wrong")
	}
	// Tampered parameters cannot make verification allocate without bound.
	for _, bad := range []string{
		strings.Replace(h, "m=19456", "m=99999999", 1),
		strings.Replace(h, "t=2", "t=1000", 1),
		"$argon2id$v=19$m=19456,t=2,p=1$$",
		"$bcrypt$whatever",
		"",
		dummyHash,
	} {
		if checkPassword(bad, "hunter2hunter2") {
			t.Errorf("checkPassword(%q) accepted", bad)
		}
	}
}

// TestSaveScanSmallResults covers results without OS, packages or findings.
func TestSaveScanSmallResults(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		res := &scan.Result{Target: scan.Target{Kind: "image", Name: "scratch", Digest: digestOf("scratch")}}
		saved, err := s.SaveScan(ctx, res, ScanMeta{})
		if err != nil || len(saved.Diff.New) != 0 {
			t.Fatalf("empty result: %+v, %v", saved, err)
		}
		sb, err := s.GetSBOM(ctx, digestOf("scratch"))
		if err != nil || len(sb.Packages) != 0 || sb.OS != nil {
			t.Errorf("empty SBOM = %+v, %v", sb, err)
		}
		if _, err := s.GetSBOM(ctx, digestOf("none")); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing SBOM: %v", err)
		}
		if _, err := s.SaveScan(ctx, nil, ScanMeta{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("nil result: %v", err)
		}
	})
}

// TestSBOMReplaced: an unchanged inventory is kept, a changed one replaced
// together with the package index.
func TestSBOMReplaced(t *testing.T) {
	ctx := context.Background()
	f := fix(t)
	forEach(t, func(t *testing.T, s *Store) {
		res := f.result("sbom", 100, 5, 0)
		for range 2 {
			if _, err := s.SaveScan(ctx, res, ScanMeta{}); err != nil {
				t.Fatal(err)
			}
		}
		res2 := f.result("sbom", 60, 5, 0)
		res2.Tool.Extractors["os/dpkg"] = 2
		if _, err := s.SaveScan(ctx, res2, ScanMeta{}); err != nil {
			t.Fatal(err)
		}
		sb, err := s.GetSBOM(ctx, res.Target.Digest)
		if err != nil || len(sb.Packages) != 60 || sb.Tool.Extractors["os/dpkg"] != 2 {
			t.Fatalf("SBOM after a changed inventory: %d packages, tool %+v, %v", len(sb.Packages), sb.Tool, err)
		}
		var n int
		if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM image_packages`).Scan(&n); err != nil || n != 60 {
			t.Errorf("package index has %d rows, want 60 (%v)", n, err)
		}
		im, _ := s.GetImage(ctx, res.Target.Digest)
		if im.PackageCount != 60 {
			t.Errorf("package count = %d", im.PackageCount)
		}
		last := res2.Packages[59]
		if _, total, _ := s.ListImages(ctx, ImageFilter{Package: res.Packages[80].Name}, Page{}); total != 0 {
			t.Errorf("removed package %s still indexed", res.Packages[80].Name)
		}
		if _, total, _ := s.ListImages(ctx, ImageFilter{Package: last.Name}, Page{}); total != 1 {
			t.Errorf("package %s not indexed", last.Name)
		}
	})
}

// TestImports holds the package doc's promise: no HTTP, no CLI.
func TestImports(t *testing.T) {
	importcheck.Forbid(t, ".", func(p string) bool {
		return p == "net/http" || strings.HasPrefix(p, "net/http/") || importcheck.Internal(p, "cli")
	})
}
