package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/suppress"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// The test world is real data end to end: the bundled demo image (real
// Debian package metadata, real Go binaries built with old modules, real
// npm package.json files) and the bundled subsets of real advisory
// databases, imported with vulndb.Import, scanned with scan.Scanner and
// matched with scan.Match, stored with store.SaveScan in a real SQLite
// store. Four images are assembled from the demo image's own layers
// (go-containerregistry mutate, as a build would stack them) so the
// fleet has more than one risk profile, and the store's clock is moved
// back so the history spans four weeks:
//
//	day -27  shop/api:1.0 (Debian + Go binaries) scanned against a database
//	         holding only the Go vulnerability database: no severities yet
//	day -25  base/debian:12 (Debian layer only) scanned: clean
//	day -22  shop/web:2.3 (Debian + npm) scanned against the full database
//	day -18  database updated: shop/api's stored SBOM re-matched against
//	         the full database (CVSS from CISA vulnrichment → severities
//	         change, no pull)
//	day -12  demo/app (all three layers) scanned
//	day  -6  demo/app rescanned with an ignore file that accepts the
//	         Windows-only Go advisories → those findings are fixed
//	day  -2  a scan of shop/worker:3.0 failed (recorded)
//	today    jobs in every state, two registries, users and tokens
//
// After every step the store's severity totals are recorded, so tests can
// compare the dashboard's reconstructed history with what the store said
// at the time.

const (
	adminUser   = "admin"
	adminPass   = "bulwark-admin-pw"
	analystUser = "alice"
	analystPass = "alice-analyst-pw"
)

var testSecretKey = []byte("0123456789abcdef0123456789abcdef")

// world is a seeded database file and what the tests need to know about it.
type world struct {
	// dbFile is the seeded SQLite file (copy it before opening).
	dbFile string
	// now is "today" for the console and the store.
	now     time.Time
	digests map[string]string // image label → digest
	// history is the severity totals after each dated step.
	history      []snapshot
	analystToken string
	ciToken      string
	adminToken   string
}

type snapshot struct {
	at     time.Time
	totals sevCounts
}

// Image labels and their references.
var worldImages = []struct{ label, ref string }{
	{"api", "registry.example.com/shop/api:1.0"},
	{"base", "registry.example.com/base/debian:12"},
	{"web", "registry.example.com/shop/web:2.3"},
	{"demo", "registry.example.com/demo/app:latest"},
}

var (
	worldOnce sync.Once
	worldVal  *world
	worldErr  error
	worldDir  string
)

// TestMain removes the shared seeded world after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if worldDir != "" {
		os.RemoveAll(worldDir)
	}
	os.Exit(code)
}

// seededWorld builds the world once per test binary.
func seededWorld(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() {
		worldDir, worldErr = os.MkdirTemp("", "bulwark-console-world-")
		if worldErr == nil {
			worldVal, worldErr = buildWorld(context.Background(), worldDir)
		}
	})
	if worldErr != nil {
		t.Fatalf("seed world: %v", worldErr)
	}
	return worldVal
}

// openWorld copies the seeded database for one test and opens it with
// the world's clock.
func openWorld(t testing.TB) (*world, *store.Store) {
	t.Helper()
	w, st, _ := openWorldFile(t)
	return w, st
}

// openWorldFile is openWorld that also returns the database file.
func openWorldFile(t testing.TB) (*world, *store.Store, string) {
	t.Helper()
	w := seededWorld(t)
	dst := filepath.Join(t.TempDir(), "bulwark.db")
	if err := copyFile(w.dbFile, dst); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dst, store.Options{SecretKey: testSecretKey, Now: func() time.Time { return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return w, st, dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// movableClock is the store's clock during seeding.
type movableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *movableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *movableClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// buildImages assembles OCI layouts from the demo image's layers: an OCI
// layout has a manifest digest (a docker-save archive has none), which the
// store keys images by.
func buildImages(demoTar, dir string) (map[string]string, error) {
	src, err := tarball.ImageFromPath(demoTar, nil)
	if err != nil {
		return nil, err
	}
	layers, err := src.Layers()
	if err != nil {
		return nil, err
	}
	cf, err := src.ConfigFile()
	if err != nil {
		return nil, err
	}
	if len(layers) != 3 || len(cf.History) < 3 {
		return nil, fmt.Errorf("demo image: want 3 layers with history, got %d (%d)", len(layers), len(cf.History))
	}
	mk := func(label, ref string, idx ...int) (string, error) {
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		var adds []mutate.Addendum
		for _, i := range idx {
			adds = append(adds, mutate.Addendum{Layer: layers[i], MediaType: types.OCILayer, History: cf.History[i]})
		}
		img, err := mutate.Append(img, adds...)
		if err != nil {
			return "", err
		}
		c2, err := img.ConfigFile()
		if err != nil {
			return "", err
		}
		c2 = c2.DeepCopy()
		c2.Architecture, c2.OS, c2.Created, c2.Config = "amd64", "linux", cf.Created, cf.Config
		if img, err = mutate.ConfigFile(img, c2); err != nil {
			return "", err
		}
		tag, err := name.NewTag(ref)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, label)
		lp, err := layout.Write(p, empty.Index)
		if err != nil {
			return "", err
		}
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag.TagStr()})); err != nil {
			return "", err
		}
		return p, nil
	}
	out := map[string]string{}
	recipes := map[string][]int{"api": {0, 1}, "base": {0}, "web": {0, 2}, "demo": {0, 1, 2}}
	for _, wi := range worldImages {
		p, err := mk(wi.label, wi.ref, recipes[wi.label]...)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", wi.ref, err)
		}
		out[wi.label] = p
	}
	return out, nil
}

func buildWorld(ctx context.Context, dir string) (*world, error) {
	dbFiles, demoTar, err := demo.WriteFiles(filepath.Join(dir, "demo"))
	if err != nil {
		return nil, err
	}
	var goOnly []string
	for _, f := range dbFiles {
		if filepath.Base(f) == "golang-vulndb.zip" {
			goOnly = append(goOnly, f)
		}
	}
	if len(goOnly) != 1 || len(dbFiles) < 4 {
		return nil, fmt.Errorf("demo database files: %v", dbFiles)
	}
	// Two databases: before and after "the update".
	if _, err := vulndb.Import(ctx, filepath.Join(dir, "db-old"), goOnly, vulndb.ImportOptions{}); err != nil {
		return nil, err
	}
	if _, err := vulndb.Import(ctx, filepath.Join(dir, "db-new"), dbFiles, vulndb.ImportOptions{}); err != nil {
		return nil, err
	}
	oldDB, err := vulndb.Open(filepath.Join(dir, "db-old"), vulndb.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer oldDB.Close()
	newDB, err := vulndb.Open(filepath.Join(dir, "db-new"), vulndb.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer newDB.Close()
	layouts, err := buildImages(demoTar, filepath.Join(dir, "images"))
	if err != nil {
		return nil, err
	}

	now := time.Now().UTC().Truncate(time.Second)
	w := &world{dbFile: filepath.Join(dir, "bulwark.db"), now: now, digests: map[string]string{}}
	clk := &movableClock{t: now}
	st, err := store.Open(ctx, w.dbFile, store.Options{SecretKey: testSecretKey, Now: clk.Now})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	day := func(offset int, hour int) time.Time {
		return dayStart(now).AddDate(0, 0, offset).Add(time.Duration(hour) * time.Hour)
	}
	snap := func() error {
		tot, err := totalsOf(ctx, st)
		if err != nil {
			return err
		}
		w.history = append(w.history, snapshot{at: clk.Now(), totals: tot})
		return nil
	}
	scanner := &scan.Scanner{Extractors: list.All(), Limits: image.DefaultLimits(), Version: "test"}
	refOf := map[string]string{}
	for _, wi := range worldImages {
		refOf[wi.label] = wi.ref
	}
	scanImage := func(label string, db *vulndb.DB, by string, sup *suppress.Set) error {
		res, err := scanner.Image(ctx, "oci-layout:"+layouts[label], image.Options{}, nil)
		if err != nil {
			return fmt.Errorf("scan %s: %w", label, err)
		}
		if err := scan.Match(ctx, db, res); err != nil {
			return err
		}
		if sup != nil {
			sup.Apply(res, clk.Now())
		}
		// The OCI layout names the image by tag only ("1.0"), which would
		// read as docker.io/library/1.0: give the full reference, as a
		// CI upload does.
		res.Target.Name = refOf[label]
		res.Target.RepoTags = []string{refOf[label]}
		ref, err := store.ParseImageRef(refOf[label])
		if err != nil {
			return err
		}
		if _, err := st.SaveScan(ctx, res, store.ScanMeta{TriggeredBy: by, Refs: []store.ImageRef{ref}}); err != nil {
			return fmt.Errorf("save scan of %s: %w", label, err)
		}
		w.digests[label] = res.Target.Digest
		return nil
	}

	clk.Set(day(-27, 9))
	if err := scanImage("api", oldDB, "ci:github-actions", nil); err != nil {
		return nil, err
	}
	if err := snap(); err != nil {
		return nil, err
	}
	clk.Set(day(-25, 14))
	if err := scanImage("base", newDB, "webhook:registry.example.com", nil); err != nil {
		return nil, err
	}
	if err := snap(); err != nil {
		return nil, err
	}
	clk.Set(day(-22, 11))
	if err := scanImage("web", newDB, "webhook:registry.example.com", nil); err != nil {
		return nil, err
	}
	if err := snap(); err != nil {
		return nil, err
	}
	// The database update: re-match the stored SBOM, no pull.
	clk.Set(day(-18, 3))
	sb, err := st.GetSBOM(ctx, w.digests["api"])
	if err != nil {
		return nil, err
	}
	matches, err := newDB.Match(ctx, sb.Packages)
	if err != nil {
		return nil, err
	}
	var fs []scan.Finding
	for _, m := range matches {
		fs = append(fs, scan.Finding{Match: m, Package: sb.Packages[m.Package]})
	}
	if _, err := st.ReplaceFindings(ctx, w.digests["api"], fs, store.SourceRematch); err != nil {
		return nil, err
	}
	if err := snap(); err != nil {
		return nil, err
	}
	clk.Set(day(-12, 16))
	if err := scanImage("demo", newDB, "user:admin", nil); err != nil {
		return nil, err
	}
	if err := st.RecordSighting(ctx, w.digests["demo"], store.Sighting{Cluster: "prod-eu", Namespace: "shop", Workload: "Deployment/storefront"}); err != nil {
		return nil, err
	}
	if err := snap(); err != nil {
		return nil, err
	}
	// The team accepts the Windows-only advisories: the image runs on Linux.
	clk.Set(day(-6, 10))
	ignore := filepath.Join(dir, "bulwarkignore.yaml")
	if err := os.WriteFile(ignore, []byte(`ignore:
  - id: GO-2024-2961
    reason: Windows-only path traversal; the image runs on Linux
  - id: GO-2023-2186
    reason: Windows reserved device names; the image runs on Linux
  - id: GO-2026-6604
    reason: Windows junctions; the image runs on Linux
`), 0o644); err != nil {
		return nil, err
	}
	sup := &suppress.Set{}
	if err := sup.LoadIgnoreFile(ignore); err != nil {
		return nil, err
	}
	if err := scanImage("demo", newDB, "ci:github-actions", sup); err != nil {
		return nil, err
	}
	if err := snap(); err != nil {
		return nil, err
	}
	clk.Set(day(-2, 8))
	if _, err := st.RecordScan(ctx, store.ScanRecord{TargetKind: "image", TargetName: "registry.example.com/shop/worker:3.0",
		Status: store.ScanFailed, TriggeredBy: "webhook:registry.example.com",
		Error: "pull registry.example.com/shop/worker:3.0: GET https://registry.example.com/v2/shop/worker/manifests/3.0: UNAUTHORIZED: authentication required"}); err != nil {
		return nil, err
	}

	// Today: users, tokens, registries, jobs.
	clk.Set(now.Add(-2 * time.Hour))
	if _, err := st.CreateUser(ctx, adminUser, adminPass, store.RoleAdmin); err != nil {
		return nil, err
	}
	if _, err := st.CreateUser(ctx, analystUser, analystPass, store.RoleAnalyst); err != nil {
		return nil, err
	}
	if w.analystToken, _, err = st.CreateToken(ctx, "console-analyst", store.RoleAnalyst, time.Time{}, "user:admin"); err != nil {
		return nil, err
	}
	if w.adminToken, _, err = st.CreateToken(ctx, "console-admin", store.RoleAdmin, time.Time{}, "user:admin"); err != nil {
		return nil, err
	}
	if w.ciToken, _, err = st.CreateToken(ctx, "github-actions", store.RoleCI, time.Time{}, "user:admin"); err != nil {
		return nil, err
	}
	if _, err := st.CreateRegistry(ctx, store.Registry{Name: "registry.example.com", URL: "https://registry.example.com",
		Kind: store.RegistryDistribution, Repositories: []string{"shop/*", "demo/*"},
		Credentials: &store.Credentials{Username: "bulwark", Password: "s3cret", WebhookSecret: "hook-secret"}}); err != nil {
		return nil, err
	}
	harbor, err := st.CreateRegistry(ctx, store.Registry{Name: "harbor-prod", URL: "https://harbor.prod.example.com",
		Kind: store.RegistryHarbor, Credentials: &store.Credentials{Username: "robot$bulwark", Password: "token"}})
	if err != nil {
		return nil, err
	}
	if err := st.RecordSweep(ctx, harbor.ID, now.Add(-90*time.Minute), "list repositories: GET https://harbor.prod.example.com/v2/_catalog: 401 Unauthorized"); err != nil {
		return nil, err
	}
	payload := func(ref string) json.RawMessage { b, _ := json.Marshal(map[string]string{"ref": ref}); return b }
	for _, j := range []store.NewJob{
		{Kind: "scan", Key: "registry.example.com/shop/api:1.1", Payload: payload("registry.example.com/shop/api:1.1"), MaxAttempts: 1},
		{Kind: "scan", Key: "registry.example.com/shop/web:2.4", Payload: payload("registry.example.com/shop/web:2.4")},
		{Kind: "scan", Key: "registry.example.com/shop/cart:0.9", Payload: payload("registry.example.com/shop/cart:0.9")},
		{Kind: "scan", Key: "registry.example.com/shop/search:5.2", Payload: payload("registry.example.com/shop/search:5.2"), RunAt: now.Add(10 * time.Minute)},
	} {
		if _, _, err := st.Enqueue(ctx, j); err != nil {
			return nil, err
		}
	}
	clk.Set(now.Add(-time.Hour))
	claimed, err := st.Claim(ctx, "central-1", 3, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	if len(claimed) != 3 {
		return nil, fmt.Errorf("claimed %d jobs, want 3", len(claimed))
	}
	for _, j := range claimed {
		switch j.Key {
		case "registry.example.com/shop/api:1.1":
			if _, _, err := st.Fail(ctx, j.Lease, "pull registry.example.com/shop/api:1.1: manifest unknown"); err != nil {
				return nil, err
			}
		case "registry.example.com/shop/web:2.4":
			if err := st.Complete(ctx, j.Lease); err != nil {
				return nil, err
			}
		}
	}
	clk.Set(now)
	return w, nil
}

// totalsOf counts the open findings by severity straight from the store
// (an independent path from the console's "at least" counting).
func totalsOf(ctx context.Context, st *store.Store) (sevCounts, error) {
	var out sevCounts
	for off := 0; ; off += store.MaxLimit {
		fs, total, err := st.ListFindings(ctx, store.FindingFilter{}, store.Page{Limit: store.MaxLimit, Offset: off})
		if err != nil {
			return out, err
		}
		for _, f := range fs {
			out[sevIndex(f.Severity)]++
		}
		if off+store.MaxLimit >= total {
			return out, nil
		}
	}
}
