package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// HTTPSink against a stand-in for central's POST /api/v1/alerts that
// decodes with the contract's own strict decoder (alerts.DecodeBatch) and is
// idempotent by id. (Central's route is tested with the real server by its
// owner; this checks the sender's side: batch limits, auth, errors.)
func TestHTTPSink(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	batches := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/alerts" || r.Header.Get("Authorization") != "Bearer agent-token" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		b, err := alerts.DecodeBatch(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		batches++
		var res alerts.IngestResult
		for _, a := range b.Alerts {
			if seen[a.ID] {
				res.Duplicates++
			} else {
				seen[a.ID] = true
				res.Accepted++
			}
		}
		json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()
	as := make([]alerts.Alert, 2500)
	for i := range as {
		as[i] = alerts.Alert{ID: fmt.Sprintf("audit-%d", i), Time: time.Now(), Source: alerts.SourceAudit, Rule: "r",
			Severity: alerts.SeverityHigh, Title: "t", Evidence: json.RawMessage(`{"auditID":"x"}`)}
	}
	s := &HTTPSink{Server: srv.URL, Token: "agent-token", Client: srv.Client()}
	acc, dup, err := s.IngestAlerts(context.Background(), as)
	if err != nil || acc != 2500 || dup != 0 || batches != 3 {
		t.Fatalf("accepted %d dups %d batches %d err %v", acc, dup, batches, err)
	}
	acc, dup, err = s.IngestAlerts(context.Background(), as[:10])
	if err != nil || acc != 0 || dup != 10 {
		t.Errorf("replay: accepted %d dups %d err %v", acc, dup, err)
	}
	s.Token = "wrong"
	if _, _, err := s.IngestAlerts(context.Background(), as[:1]); err == nil {
		t.Error("401 not reported")
	}
}
