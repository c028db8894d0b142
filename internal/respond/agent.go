package respond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// ErrConflict: central already has a different result for the action
// (another responder, or an admin, reported first).
var ErrConflict = errors.New("action already has a result")

// Central is the agent's view of central's response-action API.
type Central interface {
	// Pending lists the cluster's pending actions, oldest first.
	Pending(ctx context.Context, cluster string) ([]alerts.Action, error)
	// Report records an action's final result.
	Report(ctx context.Context, id int64, res alerts.ActionResult) error
}

// Client is the HTTP implementation of Central:
// GET /api/v1/actions?cluster=NAME&state=pending and
// POST /api/v1/actions/{id}/result, with an agent token.
type Client struct {
	BaseURL string // https://central:8443
	Token   string
	HTTP    *http.Client // must not follow redirects (the token would go along)
}

// maxResponse bounds what the agent reads from central.
const maxResponse = 8 << 20

// pageSize is how many pending actions one poll takes.
const pageSize = 100

func (c *Client) Pending(ctx context.Context, cluster string) ([]alerts.Action, error) {
	q := url.Values{"cluster": {cluster}, "state": {string(alerts.ActionPending)}, "limit": {strconv.Itoa(pageSize)}}
	var out alerts.ActionList
	if err := c.do(ctx, http.MethodGet, "/api/v1/actions?"+q.Encode(), nil, &out); err != nil {
		return nil, fmt.Errorf("list pending actions: %w", err)
	}
	return out.Actions, nil
}

func (c *Client) Report(ctx context.Context, id int64, res alerts.ActionResult) error {
	if err := c.do(ctx, http.MethodPost, "/api/v1/actions/"+strconv.FormatInt(id, 10)+"/result", res, nil); err != nil {
		return fmt.Errorf("report action %d: %w", id, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return err
	}
	if len(raw) > maxResponse {
		return fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	if resp.StatusCode == http.StatusConflict {
		return ErrConflict
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s: %s (%s)", resp.Status, e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}

// Agent pulls the cluster's pending actions from central, performs them and
// reports each result.
type Agent struct {
	Central  Central
	Kube     kubernetes.Interface
	Cluster  string
	Interval time.Duration // between polls when idle (default 10s)
	// ActionTimeout bounds one action against the API server (default 30s).
	ActionTimeout time.Duration
	Log           *slog.Logger
}

// Run polls until ctx ends. Errors talking to central are logged and
// retried with backoff (up to 10 intervals); they never stop the agent.
func (a *Agent) Run(ctx context.Context) error {
	interval := a.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		n, err := a.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			a.Log.Warn("poll central", "err", err)
			wait = min(max(2*wait, interval), 10*interval)
		case n >= pageSize:
			wait = 0 // more may be queued behind a full page
		default:
			wait = interval
		}
	}
}

// Poll runs one round: it takes the pending actions, performs each and
// reports the result, and returns how many it completed and reported. An
// action whose result could not be reported comes back in the next poll
// and is performed again, which is safe because every action is
// idempotent. The error is the first failure to talk to central.
func (a *Agent) Poll(ctx context.Context) (int, error) {
	list, err := a.Central.Pending(ctx, a.Cluster)
	if err != nil {
		return 0, err
	}
	timeout := a.ActionTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	done := 0
	var firstErr error
	for _, act := range list {
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		if act.State != alerts.ActionPending {
			continue
		}
		res := alerts.ActionResult{State: alerts.ActionDone}
		if act.Cluster != a.Cluster {
			// Never act on another cluster's action, whatever central sent.
			res = alerts.ActionResult{State: alerts.ActionFailed,
				Message: fmt.Sprintf("responder for cluster %q refused an action for cluster %q", a.Cluster, act.Cluster)}
		} else {
			actx, cancel := context.WithTimeout(ctx, timeout)
			o, err := Do(actx, a.Kube, act)
			cancel()
			res = o.Result()
			if err != nil {
				res = alerts.ActionResult{State: alerts.ActionFailed, Message: err.Error()}
			}
		}
		res.Message = clip(res.Message, alerts.MaxTitleLen)
		log := a.Log.With("action_id", act.ID, "action", act.Action, "namespace", act.Namespace, "pod", act.Pod, "node", act.Node)
		if res.State == alerts.ActionFailed {
			log.Warn("action failed", "message", res.Message)
		} else {
			log.Info("action done", "message", res.Message)
		}
		err := a.Central.Report(ctx, act.ID, res)
		switch {
		case errors.Is(err, ErrConflict):
			log.Info("action already reported by someone else")
			done++
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		default:
			done++
		}
	}
	return done, firstErr
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
