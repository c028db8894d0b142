package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/store"
)

// The receivers below are protocol-exact stand-ins, not the products: no
// webhook receiver, Slack, Teams, Splunk or Elasticsearch server can be
// installed on this machine. Each validates what the real server
// validates and answers as it answers (status codes, bodies, per-item
// results), so the exporters are tested against the protocol.

// webhookReceiver checks signature, timestamp and idempotency key like a
// careful receiver, and records each distinct delivery once.
type webhookReceiver struct {
	t   testing.TB
	key []byte

	mu        sync.Mutex
	ids       []string // accepted, in order of arrival
	seen      map[string]int
	requests  int
	fail      int           // answer 500 to the next fail requests
	hang      time.Duration // sleep before answering
	lastError string
}

func newWebhookReceiver(t testing.TB, key string) (*webhookReceiver, *httptest.Server) {
	wr := &webhookReceiver{t: t, key: []byte(key), seen: map[string]int{}}
	srv := httptest.NewServer(wr)
	t.Cleanup(srv.Close)
	return wr, srv
}

func (wr *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	wr.mu.Lock()
	wr.requests++
	hang, fail := wr.hang, wr.fail > 0
	if fail {
		wr.fail--
	}
	wr.mu.Unlock()
	if hang > 0 {
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		http.Error(w, "upstream unavailable", http.StatusInternalServerError)
		return
	}
	bad := func(code int, msg string) {
		wr.mu.Lock()
		wr.lastError = msg
		wr.mu.Unlock()
		http.Error(w, msg, code)
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		bad(http.StatusBadRequest, "want POST application/json")
		return
	}
	if err := VerifySignature(wr.key, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		bad(http.StatusUnauthorized, err.Error())
		return
	}
	var rec Record
	if err := json.Unmarshal(body, &rec); err != nil || rec.ID == "" {
		bad(http.StatusBadRequest, "body is not a record")
		return
	}
	key := r.Header.Get(HeaderIdemKey)
	if key != rec.ID {
		bad(http.StatusBadRequest, "Idempotency-Key does not name the record")
		return
	}
	wr.mu.Lock()
	defer wr.mu.Unlock()
	wr.seen[key]++
	if wr.seen[key] == 1 {
		wr.ids = append(wr.ids, key)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (wr *webhookReceiver) accepted() []string {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return append([]string(nil), wr.ids...)
}

func recordIDs(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func records(n, from int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = sampleRecord(from + i)
	}
	return out
}

// TestWebhookThroughOutbox: records queued in the store reach a signing
// receiver once each, in order, through the dispatcher (both backends).
func TestWebhookThroughOutbox(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			st := openStore(t, b.DSN(t))
			wr, srv := newWebhookReceiver(t, "s3cret-hmac")
			e := createExport(t, st, Config{Name: "hook", Type: TypeWebhook, URL: srv.URL, BatchSize: 7,
				Secrets: Secrets{HMACKey: "s3cret-hmac"}})
			runDispatcher(t, st, DispatcherOptions{})
			recs := records(25, 0)
			enqueue(t, st, recs...)
			waitFor(t, 10*time.Second, "25 deliveries", func() bool { return len(wr.accepted()) == 25 })
			if diff := cmp.Diff(recordIDs(recs), wr.accepted()); diff != "" {
				t.Errorf("order (-queued +received):\n%s", diff)
			}
			waitFor(t, 5*time.Second, "outbox empty", func() bool {
				s, _ := st.ExportOutboxStats(context.Background(), e.ID)
				return s.Pending == 0
			})
			got, _ := st.GetExport(context.Background(), e.ID)
			if got.Delivered != 25 || got.LastSuccessAt.IsZero() {
				t.Errorf("export status: delivered %d, last success %v", got.Delivered, got.LastSuccessAt)
			}
		})
	}
}

// TestWebhookFaults: a receiver that answers 500 and then recovers gets
// everything, in order, each record once; one that hangs is cut off by
// the timeout and retried; a 4xx for one record makes it a dead letter
// without blocking the rest.
func TestWebhookFaults(t *testing.T) {
	st := openStore(t, backends[0].DSN(t))
	ctx := context.Background()

	t.Run("500 then recovers", func(t *testing.T) {
		wr, srv := newWebhookReceiver(t, "k")
		wr.fail = 3
		e := createExport(t, st, Config{Name: "flaky", Type: TypeWebhook, URL: srv.URL, BatchSize: 4, Secrets: Secrets{HMACKey: "k"}})
		recs := records(10, 100)
		enqueue(t, st, recs...)
		d := runDispatcher(t, st, DispatcherOptions{})
		waitFor(t, 30*time.Second, "delivery after the outage", func() bool { return len(wr.accepted()) == 10 })
		if diff := cmp.Diff(recordIDs(recs), wr.accepted()); diff != "" {
			t.Errorf("order after retries (-queued +received):\n%s", diff)
		}
		wr.mu.Lock()
		for id, n := range wr.seen {
			if n != 1 {
				t.Errorf("%s received %d times", id, n)
			}
		}
		if wr.requests != 13 {
			t.Errorf("%d requests, want 10 deliveries + 3 failures", wr.requests)
		}
		wr.mu.Unlock()
		got, _ := st.GetExport(ctx, e.ID)
		if got.Failures != 0 || !strings.Contains(got.LastError, "HTTP 500") {
			t.Errorf("export after recovery: failures %d, last error %q", got.Failures, got.LastError)
		}
		_ = d
		if err := st.DeleteExport(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("hang", func(t *testing.T) {
		wr, srv := newWebhookReceiver(t, "k")
		wr.hang = 5 * time.Second
		e := createExport(t, st, Config{Name: "hangs", Type: TypeWebhook, URL: srv.URL, Timeout: Duration(200 * time.Millisecond),
			Secrets: Secrets{HMACKey: "k"}})
		enqueue(t, st, records(2, 200)...)
		runDispatcher(t, st, DispatcherOptions{})
		waitFor(t, 10*time.Second, "the timeout to be recorded", func() bool {
			got, _ := st.GetExport(ctx, e.ID)
			return got.Failures >= 1
		})
		got, _ := st.GetExport(ctx, e.ID)
		if !strings.Contains(got.LastError, "deadline exceeded") && !strings.Contains(got.LastError, "timeout") {
			t.Errorf("last error %q, want a timeout", got.LastError)
		}
		wr.mu.Lock()
		wr.hang = 0
		wr.mu.Unlock()
		waitFor(t, 15*time.Second, "delivery once the receiver answers", func() bool { return len(wr.accepted()) == 2 })
		if err := st.DeleteExport(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("4xx dead letter", func(t *testing.T) {
		_, srv := newWebhookReceiver(t, "right-key")
		// Wrong key: 401 is retried (the operator fixes credentials), so
		// use a receiver that refuses one record with 422 instead.
		var mu sync.Mutex
		var got []string
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get(HeaderIdemKey)
			if strings.HasSuffix(key, "301") {
				http.Error(w, "schema violation", http.StatusUnprocessableEntity)
				return
			}
			mu.Lock()
			got = append(got, key)
			mu.Unlock()
		})
		e := createExport(t, st, Config{Name: "strict", Type: TypeWebhook, URL: srv.URL})
		recs := records(4, 300)
		enqueue(t, st, recs...)
		runDispatcher(t, st, DispatcherOptions{})
		waitFor(t, 10*time.Second, "3 deliveries and a dead letter", func() bool {
			s, _ := st.ExportOutboxStats(ctx, e.ID)
			return s.Pending == 0 && s.Dead == 1
		})
		mu.Lock()
		if diff := cmp.Diff([]string{recs[0].ID, recs[2].ID, recs[3].ID}, got); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		mu.Unlock()
		dead, _, _ := st.ListDeadExports(ctx, e.ID, store.Page{})
		if len(dead) != 1 || dead[0].Key != recs[1].ID || !strings.Contains(dead[0].LastError, "422") {
			t.Errorf("dead letters: %+v", dead)
		}
	})
}

// hecReceiver is a Splunk HTTP Event Collector stand-in: it checks the
// "Authorization: Splunk <token>" header, parses the body as HEC does (a
// stream of JSON event envelopes, each with an "event"), answers
// {"text":"Success","code":0}, and with indexer acknowledgement on
// requires a channel and returns an ackId that becomes true on the second
// poll of /services/collector/ack.
type hecReceiver struct {
	token string
	ack   bool

	mu     sync.Mutex
	events []map[string]any
	nextID int64
	polls  map[int64]int
}

func (h *hecReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Splunk "+h.token {
		reply(http.StatusUnauthorized, map[string]any{"text": "Invalid token", "code": 4})
		return
	}
	ch := r.Header.Get("X-Splunk-Request-Channel")
	if h.ack && ch == "" {
		reply(http.StatusBadRequest, map[string]any{"text": "Data channel is missing", "code": 10})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch r.URL.Path {
	case "/services/collector/event":
		dec := json.NewDecoder(r.Body)
		var batch []map[string]any
		for {
			var ev map[string]any
			err := dec.Decode(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				reply(http.StatusBadRequest, map[string]any{"text": "Invalid data format", "code": 6})
				return
			}
			if _, ok := ev["event"]; !ok {
				reply(http.StatusBadRequest, map[string]any{"text": "Event field is required", "code": 12})
				return
			}
			if _, ok := ev["time"].(float64); !ok {
				reply(http.StatusBadRequest, map[string]any{"text": "Invalid time", "code": 6})
				return
			}
			batch = append(batch, ev)
		}
		if len(batch) == 0 {
			reply(http.StatusBadRequest, map[string]any{"text": "No data", "code": 5})
			return
		}
		h.events = append(h.events, batch...)
		if h.ack {
			h.nextID++
			reply(http.StatusOK, map[string]any{"text": "Success", "code": 0, "ackId": h.nextID})
			return
		}
		reply(http.StatusOK, map[string]any{"text": "Success", "code": 0})
	case "/services/collector/ack":
		var req struct {
			Acks []int64 `json:"acks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(http.StatusBadRequest, map[string]any{"text": "Invalid data format", "code": 6})
			return
		}
		out := map[string]bool{}
		for _, id := range req.Acks {
			h.polls[id]++
			out[fmt.Sprint(id)] = h.polls[id] >= 2
		}
		reply(http.StatusOK, map[string]any{"acks": out})
	default:
		http.NotFound(w, r)
	}
}

func TestSplunkHEC(t *testing.T) {
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprintf("ack=%v", ack), func(t *testing.T) {
			h := &hecReceiver{token: "11111111-2222-3333-4444-555555555555", ack: ack, polls: map[int64]int{}}
			srv := httptest.NewServer(h)
			defer srv.Close()
			c := Config{Name: "hec", Type: TypeSplunkHEC, URL: srv.URL, Index: "security", Ack: ack,
				Secrets: Secrets{Token: h.token}}
			if err := c.Normalize(); err != nil {
				t.Fatal(err)
			}
			exp, err := New(&c, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			recs := records(3, 0)
			if err := exp.Deliver(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			if len(h.events) != 3 {
				t.Fatalf("%d events", len(h.events))
			}
			ev := h.events[1]
			if ev["sourcetype"] != "bulwark:alert" || ev["index"] != "security" || ev["host"] != "node-3" ||
				ev["event"].(map[string]any)["id"] != recs[1].ID || ev["time"].(float64) != float64(recs[1].Time.UnixMicro())/1e6 {
				t.Errorf("event envelope: %v", ev)
			}
			if ack && h.polls[1] != 2 {
				t.Errorf("ack polled %d times, want until true (2)", h.polls[1])
			}
			// A wrong token is a retryable failure (fix the token, keep the records).
			c.Secrets.Token = "wrong"
			bad, _ := New(&c, Deps{})
			if err := bad.Deliver(context.Background(), recs[:1]); err == nil || IsPermanentForTest(err) {
				t.Errorf("wrong token: %v", err)
			}
		})
	}
}

// esReceiver is an Elasticsearch _bulk stand-in: NDJSON with an action
// line and a source line per document, "create" refused with 409 when
// the _id exists, and scripted per-item 429s (a node's write queue full:
// partial failure with "errors": true).
type esReceiver struct {
	mu       sync.Mutex
	docs     map[string]map[string]any
	order    []string
	reject   map[string]int // _id → how many times to answer 429
	creates  int
	conflict int
}

func (es *esReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_bulk" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		http.Error(w, `{"error":"Content-Type header [`+ct+`] is not supported","status":406}`, http.StatusNotAcceptable)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "elastic" || p != "changeme" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if !bytes.HasSuffix(body, []byte("\n")) {
		http.Error(w, `{"error":"The bulk request must be terminated by a newline [\\n]","status":400}`, http.StatusBadRequest)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var items []map[string]any
	errors := false
	es.mu.Lock()
	defer es.mu.Unlock()
	for sc.Scan() {
		var action map[string]map[string]any
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			http.Error(w, `{"error":"Malformed action/metadata line","status":400}`, http.StatusBadRequest)
			return
		}
		meta, ok := action["create"]
		if !ok {
			http.Error(w, `{"error":"want create actions","status":400}`, http.StatusBadRequest)
			return
		}
		if !sc.Scan() {
			http.Error(w, `{"error":"action without source","status":400}`, http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			http.Error(w, `{"error":"failed to parse source","status":400}`, http.StatusBadRequest)
			return
		}
		id, _ := meta["_id"].(string)
		res := map[string]any{"_index": meta["_index"], "_id": id}
		switch {
		case es.reject[id] > 0:
			es.reject[id]--
			res["status"] = 429
			res["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
			errors = true
		case es.docs[id] != nil:
			es.conflict++
			res["status"] = 409
			res["error"] = map[string]any{"type": "version_conflict_engine_exception", "reason": "[" + id + "]: version conflict, document already exists"}
			errors = true
		default:
			es.creates++
			es.docs[id] = doc
			es.order = append(es.order, id)
			res["status"] = 201
			res["result"] = "created"
		}
		items = append(items, map[string]any{"create": res})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": errors, "items": items})
}

// TestElasticsearchBulk: per-item 429s are retried without re-indexing
// the items that succeeded, and a redelivered batch (the 409s of "create"
// with _id = alert id) indexes nothing twice.
func TestElasticsearchBulk(t *testing.T) {
	st := openStore(t, backends[0].DSN(t))
	es := &esReceiver{docs: map[string]map[string]any{}, reject: map[string]int{}}
	srv := httptest.NewServer(es)
	defer srv.Close()
	recs := records(6, 0)
	es.reject[recs[2].ID] = 2
	es.reject[recs[4].ID] = 1
	e := createExport(t, st, Config{Name: "es", Type: TypeElasticsearch, URL: srv.URL, Username: "elastic",
		Secrets: Secrets{Password: "changeme"}})
	enqueue(t, st, recs...)
	runDispatcher(t, st, DispatcherOptions{})
	waitFor(t, 20*time.Second, "all indexed", func() bool {
		s, _ := st.ExportOutboxStats(context.Background(), e.ID)
		return s.Pending == 0
	})
	es.mu.Lock()
	if es.creates != 6 || es.conflict != 0 {
		t.Errorf("%d creates, %d conflicts; want 6 and 0 (items that succeeded are not resent)", es.creates, es.conflict)
	}
	doc := es.docs[recs[0].ID]
	if doc["@timestamp"] != "2026-11-27T16:30:00Z" || doc["rule"] != "Terminal shell in container" || doc["kind"] != "alert" {
		t.Errorf("document: %v", doc)
	}
	es.mu.Unlock()
	// A redelivery (e.g. after a crash between the bulk call and the
	// outbox update) is answered with 409s and counts as delivered.
	c := Config{Name: "es", Type: TypeElasticsearch, URL: srv.URL, Username: "elastic", Secrets: Secrets{Password: "changeme"}}
	_ = c.Normalize()
	exp, _ := New(&c, Deps{})
	if err := exp.Deliver(context.Background(), recs); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.creates != 6 || es.conflict != 6 || len(es.docs) != 6 {
		t.Errorf("after redelivery: %d creates, %d conflicts, %d docs", es.creates, es.conflict, len(es.docs))
	}
}

// chatReceiver stands in for Slack and Teams incoming webhooks: it
// validates the payload shape each service requires (Slack: "text" or
// "blocks"; Teams: a message with an Adaptive Card attachment) and
// answers as they do (Slack: 200 "ok", 400 "invalid_payload").
func chatReceiver(t *testing.T, kind string, got *[]map[string]any, mu *sync.Mutex) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		switch kind {
		case "slack":
			if _, ok := m["text"].(string); !ok {
				http.Error(w, "no_text", http.StatusBadRequest)
				return
			}
			for _, b := range m["blocks"].([]any) {
				if b.(map[string]any)["type"] == nil {
					http.Error(w, "invalid_blocks", http.StatusBadRequest)
					return
				}
			}
			_, _ = w.Write([]byte("ok"))
		case "teams":
			att, _ := m["attachments"].([]any)
			if m["type"] != "message" || len(att) != 1 ||
				att[0].(map[string]any)["contentType"] != "application/vnd.microsoft.card.adaptive" ||
				att[0].(map[string]any)["content"].(map[string]any)["type"] != "AdaptiveCard" {
				http.Error(w, "Bad payload", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		}
		mu.Lock()
		*got = append(*got, m)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSlackAndTeams(t *testing.T) {
	for _, kind := range []string{TypeSlack, TypeTeams} {
		t.Run(kind, func(t *testing.T) {
			var got []map[string]any
			var mu sync.Mutex
			srv := chatReceiver(t, kind, &got, &mu)
			c := Config{Name: kind, Type: kind, Secrets: Secrets{WebhookURL: srv.URL + "/services/T000/B000/XXXX"}}
			if err := c.Normalize(); err != nil {
				t.Fatal(err)
			}
			exp, err := New(&c, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			r := sampleRecord(1)
			r.Title = "<script>alert(1)</script> & shell"
			if err := exp.Deliver(context.Background(), []Record{r}); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got[0])
			s := string(b)
			for _, want := range []string{"HIGH", "Terminal shell in container", "namespace payments", "Deployment/api", "T1059.004"} {
				if !strings.Contains(s, want) {
					t.Errorf("message lacks %q: %s", want, s)
				}
			}
			if kind == TypeSlack {
				head := got[0]["blocks"].([]any)[0].(map[string]any)["text"].(map[string]any)["text"].(string)
				if !strings.Contains(head, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; shell") {
					t.Errorf("Slack mrkdwn not escaped: %s", head)
				}
			}
		})
	}
}
