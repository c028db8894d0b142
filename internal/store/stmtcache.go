package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps statements prepared on the writer pool for hot paths
// whose SQL is long and constant (the alert ingest's multi-row inserts):
// modernc's SQLite parses a statement on every Exec otherwise, which for a
// 250-row upsert costs as much as executing it.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns the cached statement for query, preparing it on the
// writer pool. It must be called outside a write transaction: on SQLite
// the writer pool is one connection, which the transaction would hold.
// Use the result inside a transaction through tx.StmtContext, which reuses
// the preparation when the transaction runs on the same connection.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := s.w.PrepareContext(ctx, s.d.rebind(query))
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

// cached returns the statement prepared for query, or nil (never prepares:
// safe inside a transaction).
func (s *Store) cached(query string) *sql.Stmt {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// chunkSizes splits n rows into statement sizes: as many chunks of limit
// (a power of two) as fit, then the binary decomposition of the rest, so
// any batch size runs on at most log2(limit)+1 distinct statements, all
// preparable ahead of time.
func chunkSizes(n, limit int) []int {
	var out []int
	for ; n >= limit; n -= limit {
		out = append(out, limit)
	}
	for size := limit / 2; size >= 1; size /= 2 {
		if n >= size {
			out = append(out, size)
			n -= size
		}
	}
	return out
}

// execStmt runs query inside tx through its cached preparation when there
// is one, else as text.
func (s *Store) execStmt(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.cached(query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return s.exec(ctx, tx, query, args...)
}

// queryStmt is execStmt for statements returning rows.
func (s *Store) queryStmt(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if st := s.cached(query); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return s.query(ctx, tx, query, args...)
}
