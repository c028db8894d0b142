package alerts

import (
	"testing"
	"time"
)

func TestClockSkew(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if d := ClockSkew("", now); d != 0 {
		t.Errorf("no header: %v", d)
	}
	if d := ClockSkew(SentAt(now.Add(-2*time.Hour)), now); d != 2*time.Hour {
		t.Errorf("sender 2 h behind: %v", d)
	}
	if d := ClockSkew(SentAt(now.Add(10*time.Minute)), now); d != -10*time.Minute {
		t.Errorf("sender 10 min ahead: %v", d)
	}
	for _, v := range []string{now.Add(-5 * time.Second).Format(time.RFC3339Nano), "yesterday", now.Add(-8 * 24 * time.Hour).Format(time.RFC3339),
		now.Add(30 * 24 * time.Hour).Format(time.RFC3339), string(make([]byte, 100))} {
		if d := ClockSkew(v, now); d != 0 {
			t.Errorf("%q: skew %v, want 0 (too small, unreadable or implausible)", v, d)
		}
	}
}

func FuzzClockSkew(f *testing.F) {
	f.Add("2026-11-29T10:00:00.123456789Z")
	f.Add("2026-11-29T10:00:00+99:99")
	f.Fuzz(func(t *testing.T, v string) {
		if d := ClockSkew(v, time.Now()); d > MaxClockSkew || d < -MaxClockSkew {
			t.Fatalf("skew %v out of bounds", d)
		}
	})
}
