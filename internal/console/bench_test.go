package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// benchConsole is a console over the seeded world with a session cookie.
func benchConsole(b *testing.B) (*Console, *http.Cookie, *world) {
	w, st := openWorld(b)
	c := newTestConsole(b, st, w.now, func(cfg *Config, _ *Deps) { cfg.DashboardCacheTTL = -1 })
	u, err := st.GetUser(b.Context(), adminUser)
	if err != nil {
		b.Fatal(err)
	}
	payload, _ := json.Marshal(session{ID: randomID(), Kind: "u", Subject: adminUser, Issued: w.now.Unix(),
		Expires: w.now.Add(time.Hour).Unix(), Stamp: u.UpdatedAt.UnixMicro()})
	return c, &http.Cookie{Name: sessionCookie, Value: c.sign("session", payload)}, w
}

func benchPage(b *testing.B, path string) {
	c, ck, w := benchConsole(b)
	if path == "image" {
		path = "/images/" + w.digests["demo"]
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "https://console.test"+path, nil)
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s: %d", path, rec.Code)
		}
	}
}

// BenchmarkOverviewPage renders the dashboard without its cache: every
// aggregate query, the trend reconstruction, the charts and the template
// (seeded world: 4 images, 466 open findings, ~500 finding events).
func BenchmarkOverviewPage(b *testing.B) { benchPage(b, "/") }

// BenchmarkImagePage renders the riskiest image's findings tab (232
// findings loaded, filtered and sorted in memory, 50 rendered).
func BenchmarkImagePage(b *testing.B) { benchPage(b, "image") }

// BenchmarkImagesPage renders the images list.
func BenchmarkImagesPage(b *testing.B) { benchPage(b, "/images") }

// BenchmarkTrendSeries reconstructs 90 days from the most events the
// overview reads (maxTrendEvents), a third of them severity changes.
func BenchmarkTrendSeries(b *testing.B) {
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var days []time.Time
	for i := range 90 {
		days = append(days, day0.AddDate(0, 0, i))
	}
	events := make([]store.FindingEvent, maxTrendEvents)
	for i := range events {
		kind := store.EventNew
		fid := int64(i)
		switch i % 3 {
		case 1:
			kind, fid = store.EventChanged, int64(i-1)
		case 2:
			kind, fid = store.EventFixed, int64(i-2)
		}
		events[i] = store.FindingEvent{ID: int64(i + 1), FindingID: fid, Kind: kind, Severity: vulndb.Severity(i % 5),
			At: day0.Add(time.Duration(i) * 90 * 24 * time.Hour / maxTrendEvents)}
	}
	b.ReportAllocs()
	for b.Loop() {
		trendSeries(sevCounts{100, 200, 300, 400, 500}, events, days)
	}
}

// BenchmarkSessionCheck is the per-request cost of reading the cookie.
func BenchmarkSessionCheck(b *testing.B) {
	c := &Console{keys: [][]byte{testSessionKey}}
	now := time.Unix(1_800_000_000, 0)
	p, _ := json.Marshal(session{ID: randomID(), Kind: "u", Subject: "admin", Issued: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	v := c.sign("session", p)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.parseSession(v, now); !ok {
			b.Fatal("rejected")
		}
	}
}
