package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// chromiumPath is Debian's Chromium (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium with a fresh profile and returns a
// context for one tab. The flags keep Chromium from reaching the network
// on its own (without them it refuses connections while starting up).
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (Debian: apt-get install -y chromium): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelC()
		cancelA()
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a deadline.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshots saves full-page PNGs for a reviewer.
type screenshots struct {
	dir, prefix string
	n           int
}

func newScreenshots(t *testing.T) *screenshots {
	dir := os.Getenv("BULWARK_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	t.Logf("screenshots in %s (%s-*.png)", dir, prefix)
	return &screenshots{dir: dir, prefix: prefix}
}

func (s *screenshots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	s.n++
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(s.dir, fmt.Sprintf("%s-%02d-%s.png", s.prefix, s.n, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
}

// waitLoaded waits until the tab shows a loaded page whose URL contains
// want (after a click that navigates, the old page is still there for a
// moment).
func waitLoaded(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	expr := fmt.Sprintf(`location.href.includes(%q) && document.readyState === "complete"`, want)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// An evaluation racing the navigation fails; try again.
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(sctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no loaded page at a URL containing %q", want)
}

// attr reads an attribute of the first node matching sel.
func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	r := get(t, ctx, "attribute "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if !r.Exists {
		t.Fatalf("%s has no attribute %s", sel, name)
	}
	return r.Value
}

func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	return get(t, ctx, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
}

// expectedTrend is what the store said at the end of each of the last
// days days, from the snapshots taken while seeding.
func expectedTrend(w *world, days int) [5][]int {
	var out [5][]int
	start := dayStart(w.now).AddDate(0, 0, -(days - 1))
	for d := range days {
		end := start.AddDate(0, 0, d+1)
		var tot sevCounts
		for _, s := range w.history {
			if s.at.Before(end) {
				tot = s.totals
			}
		}
		for i := range out {
			out[i] = append(out[i], tot[i])
		}
	}
	return out
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// TestBrowser drives the console in a real headless Chromium against a
// real SQLite store seeded with real scans (see seed_test.go): log in,
// read the dashboard, open an image, filter its findings, open a
// vulnerability, the other pages, an admin action, and the refusals.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	w, st := openWorld(t)
	bg := context.Background()
	var tested []int64
	c := newTestConsole(t, st, w.now, func(cfg *Config, d *Deps) {
		d.PutAdmissionPolicy = putPolicyWith(st)
		d.TestRegistry = func(ctx context.Context, id int64) error {
			// The real check lives in the server (it reaches the
			// registry); what is tested here is the console's side:
			// the button, the call and how its outcome is shown.
			tested = append(tested, id)
			r, err := st.GetRegistry(ctx, id)
			if err != nil {
				return err
			}
			if r.Kind == store.RegistryHarbor {
				return fmt.Errorf("GET %s/v2/: 401 Unauthorized", r.URL)
			}
			return nil
		}
	})
	srv := httptest.NewTLSServer(c)
	t.Cleanup(srv.Close)
	shots := newScreenshots(t)
	base := srv.URL

	t.Run("anonymous visit and wrong password", func(t *testing.T) {
		step(t, ctx, "open the console",
			chromedp.Navigate(base+"/images?kev=1"),
			chromedp.WaitVisible(chromedp.ID("login-form")))
		loc := get(t, ctx, "location", chromedp.Location())
		if !strings.Contains(loc, "/login?next=%2Fimages%3Fkev%3D1") {
			t.Fatalf("an anonymous visit landed on %s, want the login page with next=", loc)
		}
		step(t, ctx, "submit a wrong password",
			chromedp.SendKeys(chromedp.ID("username"), adminUser),
			chromedp.SendKeys(chromedp.ID("password"), "not-the-password"),
			chromedp.Click(chromedp.ID("login-submit")),
			chromedp.WaitVisible(chromedp.ID("login-error")))
		msg := get(t, ctx, "error text", chromedp.Text(chromedp.ID("login-error")))
		if !strings.Contains(msg, "Wrong username or password") {
			t.Errorf("login error = %q", msg)
		}
		if n := count(t, ctx, `svg[data-chart]`); n != 0 {
			t.Errorf("a failed login shows %d charts", n)
		}
		shots.take(t, ctx, "login-wrong-password")
	})

	t.Run("log in and read the dashboard", func(t *testing.T) {
		step(t, ctx, "log in",
			chromedp.Navigate(base+"/login"),
			chromedp.WaitVisible(chromedp.ID("login-form")),
			chromedp.SendKeys(chromedp.ID("username"), adminUser),
			chromedp.SendKeys(chromedp.ID("password"), adminPass),
			chromedp.Click(chromedp.ID("login-submit")),
			chromedp.WaitVisible(chromedp.CSS(`svg[data-chart="trend"]`)))
		want, err := totalsOf(bg, st)
		if err != nil {
			t.Fatal(err)
		}
		trend := expectedTrend(w, 30)
		for i, k := range sevKeys {
			if got := attr(t, ctx, fmt.Sprintf(`.card[data-severity=%q]`, k), "data-count"); got != strconv.Itoa(want[i]) {
				t.Errorf("card %s shows %s, the store has %d open", k, got, want[i])
			}
			path := fmt.Sprintf(`svg[data-chart="trend"] path[data-series=%q]`, k)
			if got := attr(t, ctx, path, "data-last"); got != strconv.Itoa(want[i]) {
				t.Errorf("trend's last %s point is %s, the store has %d", k, got, want[i])
			}
			if got := attr(t, ctx, path, "data-values"); got != joinInts(trend[i]) {
				t.Errorf("trend %s per day:\n got %s\nwant %s (the store's totals at each day's end while seeding)", k, got, joinInts(trend[i]))
			}
		}
		if n := count(t, ctx, `svg[data-chart="trend"] path.area`); n != 5 {
			t.Errorf("trend chart has %d area paths, want 5", n)
		}
		if n := count(t, ctx, `svg[data-chart="trend"] .hover rect`); n != 30 {
			t.Errorf("trend chart has %d day columns, want 30", n)
		}
		// Fixable donut and count.
		_, fixable, err := st.ListFindings(bg, store.FindingFilter{Fixable: true}, store.Page{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := attr(t, ctx, `svg[data-chart="fixable"]`, "data-total"); got != strconv.Itoa(want.total()) {
			t.Errorf("donut total %s, want %d", got, want.total())
		}
		if got := attr(t, ctx, `svg[data-chart="fixable"] circle[data-series="fixable"]`, "data-value"); got != strconv.Itoa(fixable) {
			t.Errorf("donut fixable %s, store %d", got, fixable)
		}
		// Top risky images: one bar row per image with findings, totals
		// in the store's risk order.
		ims, _, err := st.ListImages(bg, store.ImageFilter{}, store.Page{Sort: "-risk"})
		if err != nil {
			t.Fatal(err)
		}
		var wantRows []string
		for _, im := range ims {
			if im.Counts.Total() > 0 {
				wantRows = append(wantRows, strconv.Itoa(im.Counts.Total()))
			}
		}
		gotRows := get(t, ctx, "bar rows", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('svg[data-chart="top-images"] .bar-row')].map(g => g.dataset.total)`))
		if strings.Join(gotRows, ",") != strings.Join(wantRows, ",") {
			t.Errorf("top images rows %v, want %v", gotRows, wantRows)
		}
		_, kev, _ := st.ListFindings(bg, store.FindingFilter{KEV: true}, store.Page{Limit: 1})
		if got := attr(t, ctx, "#card-kev", "data-count"); got != strconv.Itoa(kev) || kev == 0 {
			t.Errorf("KEV card %s, store %d (the demo data has known-exploited findings)", got, kev)
		}
		if n := count(t, ctx, "#kev-list li"); n == 0 {
			t.Error("no exploited vulnerability listed")
		}
		shots.take(t, ctx, "overview")
	})

	var imageDigest string
	t.Run("open an image and filter its findings", func(t *testing.T) {
		step(t, ctx, "open the riskiest image",
			chromedp.Click(chromedp.CSS(`svg[data-chart="top-images"] .bar-row a`)),
			chromedp.WaitVisible(chromedp.ID("findings-table")))
		imageDigest = get(t, ctx, "digest", chromedp.Text(chromedp.ID("image-digest")))
		im, err := st.GetImage(bg, imageDigest)
		if err != nil {
			t.Fatalf("the page shows digest %q: %v", imageDigest, err)
		}
		ims, _, _ := st.ListImages(bg, store.ImageFilter{}, store.Page{Sort: "-risk", Limit: 1})
		if ims[0].Digest != imageDigest {
			t.Errorf("the first bar opened %s, the riskiest image is %s", imageDigest, ims[0].Digest)
		}
		want := countsOf(im.Counts)
		for i, k := range sevKeys {
			got := get(t, ctx, "chip "+k, chromedp.Text(chromedp.CSS(fmt.Sprintf(`.chip[data-severity=%q] .chip-n`, k))))
			if got != strconv.Itoa(want[i]) {
				t.Errorf("chip %s = %s, image has %d", k, got, want[i])
			}
		}
		if n := count(t, ctx, "#findings-table tbody tr"); n != min(50, im.Counts.Total()) {
			t.Errorf("%d finding rows, want %d", n, min(50, im.Counts.Total()))
		}
		shots.take(t, ctx, "image-findings")

		step(t, ctx, "filter by severity high",
			chromedp.Click(chromedp.CSS(`.chip[data-severity="high"]`)),
			chromedp.WaitVisible(chromedp.CSS(`.chip[data-severity="high"][aria-current="true"]`)))
		sevs := get(t, ctx, "row severities", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#findings-table tbody tr')].map(r => r.dataset.severity)`))
		if len(sevs) != min(50, im.Counts.High) || len(sevs) == 0 {
			t.Errorf("%d rows after filtering by high, image has %d high", len(sevs), im.Counts.High)
		}
		for _, s := range sevs {
			if s != "high" {
				t.Fatalf("row of severity %s shown under the high filter", s)
			}
		}
		shots.take(t, ctx, "image-findings-high")

		// Text filter: one advisory id, through the form.
		fs, _, _ := st.ListFindings(bg, store.FindingFilter{ImageDigest: imageDigest, MinSeverity: vulndb.SeverityHigh}, store.Page{Limit: 1})
		id := fs[0].VulnID
		_, n, _ := st.ListFindings(bg, store.FindingFilter{ImageDigest: imageDigest, VulnID: id}, store.Page{Limit: 1})
		step(t, ctx, "filter by text",
			chromedp.Navigate(base+"/images/"+imageDigest),
			chromedp.WaitVisible(chromedp.ID("f-fq")),
			chromedp.SendKeys(chromedp.ID("f-fq"), id+"\r"), // Enter submits
			// The new page renders the filter's value attribute (typing
			// does not change it).
			chromedp.WaitVisible(chromedp.CSS(`#f-fq[value=`+strconv.Quote(id)+`]`)),
			chromedp.WaitVisible(chromedp.CSS(`#findings-table tbody tr[data-vuln=`+strconv.Quote(id)+`]`)))
		vulns := get(t, ctx, "row ids", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#findings-table tbody tr')].map(r => r.dataset.vuln)`))
		if len(vulns) != n {
			t.Errorf("text filter %q shows %d rows, the image has %d findings of it", id, len(vulns), n)
		}
		for _, v := range vulns {
			if v != id {
				t.Errorf("text filter %q shows %s", id, v)
			}
		}

		step(t, ctx, "packages tab", chromedp.Click(chromedp.ID("tab-packages")), chromedp.WaitVisible(chromedp.ID("packages-table")))
		if n := count(t, ctx, "#packages-table .tag-os"); n == 0 {
			t.Error("no package is marked as installed by the OS")
		}
		shots.take(t, ctx, "image-packages")
		step(t, ctx, "layers tab", chromedp.Click(chromedp.ID("tab-layers")), chromedp.WaitVisible(chromedp.ID("layers-table")))
		if n := count(t, ctx, "#layers-table tbody tr"); n != len(im.Layers) {
			t.Errorf("%d layer rows, image has %d layers", n, len(im.Layers))
		}
		shots.take(t, ctx, "image-layers")
	})

	t.Run("open a vulnerability and see the affected images", func(t *testing.T) {
		kevs, _, err := st.ListFindings(bg, store.FindingFilter{KEV: true}, store.Page{Limit: 1})
		if err != nil || len(kevs) == 0 {
			t.Fatalf("no KEV finding in the world: %v", err)
		}
		id := kevs[0].VulnID
		step(t, ctx, "open from the dashboard",
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("kev-list")),
			chromedp.Click(chromedp.CSS(`#kev-list a.vuln-id`)),
			chromedp.WaitVisible(chromedp.ID("affected-table")))
		if got := get(t, ctx, "vuln id", chromedp.Text(chromedp.ID("vuln-id"))); !strings.HasPrefix(got, id) {
			t.Errorf("vulnerability page for %q, want %s", got, id)
		}
		all, _, _ := st.ListFindings(bg, store.FindingFilter{VulnID: id}, store.Page{Limit: 1000})
		images := map[string]bool{}
		for _, f := range all {
			images[f.ImageDigest] = true
		}
		if got := get(t, ctx, "affected", chromedp.Text(chromedp.ID("affected-count"))); got != strconv.Itoa(len(images)) {
			t.Errorf("affected images %s, store %d", got, len(images))
		}
		links := get(t, ctx, "image links", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#affected-table a.image-name')].map(a => a.getAttribute('href'))`))
		for dg := range images {
			found := false
			for _, l := range links {
				found = found || strings.HasSuffix(l, "/images/"+dg)
			}
			if !found {
				t.Errorf("affected image %s not linked (links %v)", dg, links)
			}
		}
		if got := get(t, ctx, "kev", chromedp.Text(chromedp.ID("vuln-kev"))); !strings.HasPrefix(got, "Yes") {
			t.Errorf("KEV field = %q", got)
		}
		shots.take(t, ctx, "vulnerability")
	})

	t.Run("images list and filters", func(t *testing.T) {
		step(t, ctx, "images", chromedp.Navigate(base+"/images"), chromedp.WaitVisible(chromedp.ID("images-table")))
		_, total, _ := st.ListImages(bg, store.ImageFilter{}, store.Page{Limit: 1})
		if n := count(t, ctx, "#images-table tbody tr"); n != total {
			t.Errorf("%d image rows, store has %d", n, total)
		}
		shots.take(t, ctx, "images")
		step(t, ctx, "KEV filter (auto-submitted by the checkbox)",
			chromedp.Click(chromedp.CSS(`input[name="kev"]`)))
		waitLoaded(t, ctx, "kev=1")
		_, kevImages, _ := st.ListImages(bg, store.ImageFilter{KEV: true}, store.Page{Limit: 1})
		if n := count(t, ctx, "#images-table tbody tr"); n != kevImages {
			t.Errorf("%d rows with the KEV filter, store has %d", n, kevImages)
		}
	})

	t.Run("policies: a bad document refused with its line, then saved", func(t *testing.T) {
		step(t, ctx, "policies", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(chromedp.ID("policy-new")))
		bad := strings.Replace(consolePolicy, "noLatest: true", "noLatest: maybe", 1)
		step(t, ctx, "submit a bad document",
			chromedp.SetValue(chromedp.ID("p-name"), "browser-gate"),
			chromedp.SetValue(chromedp.ID("p-yaml"), bad),
			chromedp.Click(chromedp.ID("policy-create")),
			chromedp.WaitVisible(chromedp.ID("form-error")))
		if msg := get(t, ctx, "error", chromedp.Text(chromedp.ID("form-error"))); !strings.Contains(msg, "central:browser-gate:6") {
			t.Errorf("error shown: %q", msg)
		}
		if v := get(t, ctx, "kept text", chromedp.Value(chromedp.ID("p-yaml"))); v != bad {
			t.Errorf("the text was not kept: %q", v)
		}
		step(t, ctx, "fix and save",
			chromedp.SetValue(chromedp.ID("p-yaml"), consolePolicy),
			chromedp.Click(chromedp.ID("policy-create")),
			chromedp.WaitVisible(chromedp.ID("policy-edit")))
		shots.take(t, ctx, "policy")
		step(t, ctx, "clusters", chromedp.Navigate(base+"/clusters"), chromedp.WaitVisible(chromedp.ID("main")))
		shots.take(t, ctx, "clusters")
		step(t, ctx, "create a token", chromedp.Navigate(base+"/settings/tokens"),
			chromedp.Click(chromedp.CSS(`section[aria-labelledby="h-new-token"] summary`)),
			chromedp.WaitVisible(chromedp.ID("t-name")),
			chromedp.SetValue(chromedp.ID("t-name"), "browser-ci"),
			chromedp.Click(chromedp.ID("token-submit")),
			chromedp.WaitVisible(chromedp.ID("token-value")))
		if v := get(t, ctx, "secret", chromedp.Text(chromedp.ID("token-value"))); !strings.HasPrefix(v, "bwk_") {
			t.Errorf("token secret shown as %q", v)
		}
		shots.take(t, ctx, "token")
		step(t, ctx, "audit log", chromedp.Navigate(base+"/settings/audit"), chromedp.WaitVisible(chromedp.ID("audit-table")))
		shots.take(t, ctx, "audit")
	})

	t.Run("registries: test connection and add one", func(t *testing.T) {
		step(t, ctx, "registries", chromedp.Navigate(base+"/registries"), chromedp.WaitVisible(chromedp.ID("registries-table")))
		step(t, ctx, "test harbor",
			chromedp.Click(chromedp.CSS(`tr[data-registry="harbor-prod"] button`)),
			chromedp.WaitVisible(chromedp.CSS(".flash-error")))
		if msg := get(t, ctx, "flash", chromedp.Text(chromedp.CSS(".flash-error"))); !strings.Contains(msg, "401 Unauthorized") {
			t.Errorf("test result %q", msg)
		}
		if len(tested) != 1 {
			t.Errorf("TestRegistry called %d times", len(tested))
		}
		shots.take(t, ctx, "registries-test-failed")
		step(t, ctx, "add a registry",
			chromedp.Click(chromedp.CSS(".form-panel summary")),
			chromedp.WaitVisible(chromedp.ID("r-name")),
			chromedp.SendKeys(chromedp.ID("r-name"), "ghcr"),
			chromedp.SetValue(chromedp.ID("r-kind"), "generic"),
			chromedp.SendKeys(chromedp.ID("r-url"), "https://ghcr.io"),
			chromedp.SendKeys(chromedp.ID("r-repos"), "bulwark-security/*"),
			chromedp.SendKeys(chromedp.ID("r-user"), "bot"),
			chromedp.SendKeys(chromedp.ID("r-pass"), "ghp_example"),
			chromedp.Click(chromedp.ID("registry-submit")),
			chromedp.WaitVisible(chromedp.CSS(`.flash-ok`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-registry="ghcr"]`)))
		r, err := st.GetRegistryByName(bg, "ghcr")
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != store.RegistryGeneric || r.URL != "https://ghcr.io" || r.Credentials == nil || r.Credentials.Password != "ghp_example" ||
			len(r.Repositories) != 1 || r.Repositories[0] != "bulwark-security/*" {
			t.Errorf("stored registry %+v (credentials %+v)", r, r.Credentials)
		}
		audit, _, _ := st.ListAudit(bg, store.AuditFilter{Action: "registry.create"}, store.Page{})
		if len(audit) != 1 || audit[0].Actor != "user:admin" || strings.Contains(string(audit[0].Details), "ghp_example") {
			t.Errorf("audit log: %+v", audit)
		}
		shots.take(t, ctx, "registries")
	})

	t.Run("a POST without the CSRF token is refused", func(t *testing.T) {
		status := get(t, ctx, "fetch", chromedp.Evaluate[int](`fetch('/registries', {method: 'POST',
			body: new URLSearchParams({name: 'csrf-less', url: 'https://evil.example', kind: 'generic'})}).then(r => r.status)`,
			chromedp.EvalAwaitPromise))
		if status != http.StatusForbidden {
			t.Errorf("POST without CSRF token: status %d, want 403", status)
		}
		if _, err := st.GetRegistryByName(bg, "csrf-less"); err == nil {
			t.Error("the CSRF-less POST created a registry")
		}
	})

	t.Run("jobs and scans", func(t *testing.T) {
		step(t, ctx, "jobs", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible(chromedp.ID("jobs-table")))
		qs, _ := st.QueueStats(bg)
		if n := count(t, ctx, `#jobs-table tr[data-state="failed"]`); n != qs.Failed || n == 0 {
			t.Errorf("%d failed job rows, store has %d", n, qs.Failed)
		}
		if txt := get(t, ctx, "error", chromedp.Text(chromedp.CSS(`#jobs-table tr[data-state="failed"] .err`))); !strings.Contains(txt, "manifest unknown") {
			t.Errorf("failed job error %q", txt)
		}
		shots.take(t, ctx, "jobs")
		step(t, ctx, "scans", chromedp.Navigate(base+"/scans"), chromedp.WaitVisible(chromedp.ID("scans-table")))
		shots.take(t, ctx, "scans")
	})

	t.Run("change the password", func(t *testing.T) {
		const newPass = "correct-horse-battery"
		step(t, ctx, "account page",
			chromedp.Click(chromedp.CSS(".who-name")),
			chromedp.WaitVisible(chromedp.ID("password-form")),
			chromedp.SendKeys(chromedp.ID("pw-current"), adminPass),
			chromedp.SendKeys(chromedp.ID("pw-new"), newPass),
			chromedp.SendKeys(chromedp.ID("pw-confirm"), newPass),
			chromedp.Click(chromedp.ID("password-submit")),
			chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
		shots.take(t, ctx, "password-changed")
		if _, err := st.Authenticate(bg, adminUser, newPass); err != nil {
			t.Errorf("the new password does not verify: %v", err)
		}
		// The browser's session moved to the new password with it.
		step(t, ctx, "still logged in", chromedp.Navigate(base+"/images"), chromedp.WaitVisible(chromedp.ID("images-table")))
	})

	t.Run("log out", func(t *testing.T) {
		step(t, ctx, "log out",
			chromedp.Click(chromedp.CSS(`.who button`)),
			chromedp.WaitVisible(chromedp.ID("login-form")),
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("login-form")))
	})

	t.Run("analyst with an API token cannot add registries", func(t *testing.T) {
		step(t, ctx, "token login",
			chromedp.Navigate(base+"/login?tab=token"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), w.analystToken),
			chromedp.Click(chromedp.ID("login-submit")),
			chromedp.WaitVisible(chromedp.CSS(`svg[data-chart="trend"]`)),
			chromedp.Navigate(base+"/registries"),
			chromedp.WaitVisible(chromedp.ID("registries-table")))
		if n := count(t, ctx, "#registry-form"); n != 0 {
			t.Error("an analyst sees the add-registry form")
		}
		if n := count(t, ctx, "#registries-table button"); n != 0 {
			t.Error("an analyst sees test-connection buttons")
		}
		shots.take(t, ctx, "registries-analyst")
	})
}

// TestBrowserHostileContent opens pages holding advisory text and names
// written to attack the console: the browser must show them as text.
// (The CSP would also block an injected inline script, so the test reads
// the text back instead of only checking that no script ran.)
func TestBrowserHostileContent(t *testing.T) {
	ctx := browser(t)
	st, digest := hostileStore(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, time.Now()))
	t.Cleanup(srv.Close)
	shots := newScreenshots(t)
	step(t, ctx, "log in and open the vulnerability",
		chromedp.Navigate(srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("username"), adminUser),
		chromedp.SendKeys(chromedp.ID("password"), adminPass),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("kev-list")),
		chromedp.Navigate(srv.URL+"/vulns/GHSA-evil-0001"),
		chromedp.WaitVisible(chromedp.ID("vuln-summary")))
	const summary = `<script>window.__xss=1;alert("xss")</script>`
	if got := get(t, ctx, "summary", chromedp.TextContent(chromedp.ID("vuln-summary"))); got != summary {
		t.Errorf("summary shown as %q, want the literal text %q", got, summary)
	}
	if n := count(t, ctx, "#vuln-summary script, #main script, #main img, #main svg [onload]"); n != 0 {
		t.Errorf("%d injected elements in the page", n)
	}
	if got := get(t, ctx, "xss flag", chromedp.Evaluate[bool](`window.__xss === undefined`)); !got {
		t.Error("the injected script ran")
	}
	shots.take(t, ctx, "hostile-vulnerability")
	for _, p := range []string{"/", "/images/" + digest + "?tab=packages", "/registries"} {
		step(t, ctx, "open "+p, chromedp.Navigate(srv.URL+p), chromedp.WaitVisible(chromedp.ID("main")))
		if n := count(t, ctx, "#main script, #main img, #main [onload], #main [onerror]"); n != 0 {
			t.Errorf("%s: %d injected elements", p, n)
		}
	}
	if got := get(t, ctx, "registry name", chromedp.Text(chromedp.CSS("#registries-table td b"))); got != `<img src=x onerror=alert(10)>` {
		t.Errorf("registry name shown as %q", got)
	}
	shots.take(t, ctx, "hostile-registries")
}
