package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSQLiteWriteTurnsInOrder: SQLite write transactions waiting for the
// one writer get it in the order they asked (database/sql alone hands a
// freed connection to a random waiter, which let export workers starve
// behind a steady ingest).
func TestSQLiteWriteTurnsInOrder(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "b.db"), Options{SecretKey: testKey})
	ctx := context.Background()
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.tx(ctx, func(*sql.Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	const waiters = 8
	for i := range waiters {
		wg.Go(func() {
			if err := s.tx(ctx, func(*sql.Tx) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(20 * time.Millisecond) // let waiter i queue before i+1
	}
	// A waiter whose context ends leaves the line with its error.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := s.tx(cctx, func(*sql.Tx) error { return nil }); err == nil {
		t.Error("a write transaction began while the writer was held")
	}
	close(hold)
	wg.Wait()
	want := make([]int, waiters)
	for i := range want {
		want[i] = i
	}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("turns (-asked +got):\n%s", diff)
	}
}
