package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// HookEvent is one registry notification to accept: its delivery identity
// (for replay protection) and the jobs it asks for.
type HookEvent struct {
	// Source names the sender, e.g. "distribution/3" (kind and registry
	// id): event ids are unique per sender only. At most 128 bytes.
	Source string
	// EventID is the sender's id of the event. At most 256 bytes.
	EventID string
	// Jobs are enqueued when the event is not a replay (may be empty: an
	// event that is recorded but asks for nothing).
	Jobs []NewJob
}

// HookAccepted is the outcome of one HookEvent.
type HookAccepted struct {
	// Replayed: the same (Source, EventID) was accepted within the window;
	// nothing was enqueued.
	Replayed bool
	// Jobs are the enqueued (or deduplicated) jobs, one per HookEvent.Jobs.
	Jobs []Enqueued
}

// AcceptHookEvents records registry notifications and enqueues their jobs
// in one transaction, so an event is either accepted with its jobs or not
// at all: a crash between the two cannot leave an event marked as seen
// whose job was never queued (its retry would then be refused as a
// replay). An event whose (Source, EventID) was accepted less than window
// ago is a replay; window <= 0 turns replay detection off. Batching many
// events into one call costs one commit for all.
func (s *Store) AcceptHookEvents(ctx context.Context, events []HookEvent, window time.Duration) ([]HookAccepted, error) {
	for i := range events {
		e := &events[i]
		if e.Source == "" || len(e.Source) > 128 || e.EventID == "" || len(e.EventID) > 256 {
			return nil, fmt.Errorf("accept hook event %d of %d: %w", i+1, len(events),
				invalid("source and event id must be 1-128 and 1-256 bytes"))
		}
		for j := range e.Jobs {
			if err := e.Jobs[j].normalize(); err != nil {
				return nil, fmt.Errorf("accept hook event %s: %w", e.EventID, err)
			}
		}
	}
	out := make([]HookAccepted, len(events))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		for i, e := range events {
			out[i] = HookAccepted{}
			if window > 0 {
				var one int
				// A row comes back when the id is new or its last
				// acceptance is older than the window (then refreshed).
				err := s.queryRow(ctx, tx, `INSERT INTO hook_deliveries (source, event_id, received_at) VALUES (?, ?, ?)
					ON CONFLICT (source, event_id) DO UPDATE SET received_at = excluded.received_at
					WHERE hook_deliveries.received_at < ? RETURNING 1`,
					e.Source, e.EventID, s.ts(now), s.ts(now.Add(-window))).Scan(&one)
				if errors.Is(err, sql.ErrNoRows) {
					out[i].Replayed = true
					continue
				}
				if err != nil {
					return fmt.Errorf("record delivery %s: %w", e.EventID, err)
				}
			}
			for _, j := range e.Jobs {
				id, created, err := s.enqueue(ctx, tx, j, now)
				if err != nil {
					return err
				}
				out[i].Jobs = append(out[i].Jobs, Enqueued{ID: id, Created: created})
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("accept %d hook events", len(events)), err)
	}
	return out, nil
}

// PurgeHookDeliveries forgets deliveries accepted before t (older than any
// replay window in use).
func (s *Store) PurgeHookDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.w, `DELETE FROM hook_deliveries WHERE received_at < ?`, s.ts(before))
	if err != nil {
		return 0, s.wrapErr("purge hook deliveries", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
