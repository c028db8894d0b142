package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAcceptHookEvents(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c := newClock()
		s.now = c.Now
		d1 := "sha256:" + hex64('a')
		d2 := "sha256:" + hex64('b')
		scan := func(d string) NewJob { return NewJob{Kind: "scan", Key: d} }
		got, err := s.AcceptHookEvents(ctx, []HookEvent{
			{Source: "distribution/1", EventID: "e1", Jobs: []NewJob{scan(d1)}},
			{Source: "distribution/1", EventID: "e2", Jobs: []NewJob{scan(d1)}}, // same digest: deduplicated job
			{Source: "distribution/1", EventID: "e1", Jobs: []NewJob{scan(d2)}}, // replay inside the batch
			{Source: "harbor/2", EventID: "e1", Jobs: []NewJob{scan(d2)}},       // same id, other sender
		}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Replayed || !got[0].Jobs[0].Created || got[1].Replayed || got[1].Jobs[0].Created ||
			got[1].Jobs[0].ID != got[0].Jobs[0].ID || !got[2].Replayed || len(got[2].Jobs) != 0 || got[3].Replayed ||
			!got[3].Jobs[0].Created {
			t.Fatalf("first batch: %+v", got)
		}
		// A replay after the batch committed, then after the window.
		c.Advance(30 * time.Minute)
		got, err = s.AcceptHookEvents(ctx, []HookEvent{{Source: "distribution/1", EventID: "e1", Jobs: []NewJob{scan(d2)}}}, time.Hour)
		if err != nil || !got[0].Replayed {
			t.Fatalf("replay within window: %+v, %v", got, err)
		}
		c.Advance(31 * time.Minute)
		got, err = s.AcceptHookEvents(ctx, []HookEvent{{Source: "distribution/1", EventID: "e1"}}, time.Hour)
		if err != nil || got[0].Replayed {
			t.Fatalf("after window: %+v, %v", got, err)
		}
		jobs, total, err := s.ListJobs(ctx, JobFilter{Kind: "scan"}, Page{})
		if err != nil || total != 2 {
			t.Fatalf("jobs = %d (%v), want 2: %+v", total, err, jobs)
		}
		n, err := s.PurgeHookDeliveries(ctx, c.Now().Add(-time.Minute))
		if err != nil || n != 2 { // e2 and harbor's e1; the refreshed e1 stays
			t.Fatalf("purged %d, %v; want 2", n, err)
		}
		if _, err := s.AcceptHookEvents(ctx, []HookEvent{{Source: "", EventID: "x"}}, time.Hour); !errors.Is(err, ErrInvalid) {
			t.Fatalf("empty source: %v", err)
		}
	})
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
