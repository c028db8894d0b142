package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// The suppressions page: every suppression (active, expired or both) with
// its scope, reason, expiry, hits and the open alerts it still holds; a
// form to create one (prefilled from the query string, so other pages can
// link to "suppress alerts like these"); and per suppression: expire now,
// delete, apply to the open alerts already stored, release the alerts it
// holds. Each change needs the triage roles the API asks for
// (rolesTriage: admin, analyst) and is written to the audit log with the
// API's action names.

// suppressionRow is one suppression as the page shows it.
type suppressionRow struct {
	ID                                        int64
	Rule, Cluster, Namespace, Workload, Image string
	Reason, CreatedBy                         string
	CreatedAt, ExpiresAt, LastHit             time.Time
	Expired                                   bool
	Hits, Applied                             int64
	// Held counts the open alerts it keeps hidden: what a release would
	// show again.
	Held       int
	AlertsHref string
}

type suppressionsData struct {
	*pageData
	State      string // active (default), expired, all
	Tabs       []tab
	Rows       []suppressionRow
	Counts     struct{ Active, Expired int }
	CanChange  bool
	Form       suppressForm
	FormReason string
	OpenForm   bool
	Expiries   []option
}

// tab is one link of a segmented control.
type tab struct {
	Key, Href, Label string
	Current          bool
}

// suppressionExpiries are the form's expiry choices (the alert detail's
// too).
var suppressionExpiries = []struct{ v, l string }{{"1h", "in 1 hour"}, {"24h", "in 24 hours"}, {"168h", "in 7 days"},
	{"720h", "in 30 days"}, {"never", "never"}}

// maxSuppressionRows bounds the page; suppressions are few by nature (a
// team with thousands has a rule to fix).
const maxSuppressionRows = 1000

// canTriage mirrors the API's rolesTriage: who may change suppressions.
func canTriage(p *principal) bool {
	return p != nil && (p.Role == store.RoleAdmin || p.Role == store.RoleAnalyst)
}

// triageOnly refuses a change unless the principal has a triage role, as
// the API does for the same change.
func (c *Console) triageOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !canTriage(principalFrom(r.Context())) {
			c.errorPage(w, r, http.StatusForbidden, "Your role cannot change suppressions.")
			return
		}
		next(w, r)
	}
}

func (c *Console) suppressionsPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &suppressionsData{pageData: c.pageData(r, "suppressions", "Suppressions")}
	d.Flash = c.takeFlash(w, r)
	d.State = q.enum("state", "active", "expired", "all")
	if d.State == "" {
		d.State = "active"
	}
	// A prefilled form: /suppressions?rule=…&namespace=…&workload=…
	d.Form = suppressForm{Rule: q.text("rule", 512), Cluster: q.text("cluster", 512), Namespace: q.text("namespace", 512),
		Workload: q.text("workload", 512), Image: q.text("image", 512)}
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	d.OpenForm = d.Form != (suppressForm{})
	d.CanChange = canTriage(principalFrom(r.Context()))
	all, err := c.st.ListSuppressions(r.Context(), true)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	now := c.now()
	for i := range all {
		sp := &all[i]
		exp := sp.Expired(now)
		if exp {
			d.Counts.Expired++
		} else {
			d.Counts.Active++
		}
		if (d.State == "active" && exp) || (d.State == "expired" && !exp) || len(d.Rows) >= maxSuppressionRows {
			continue
		}
		held, err := c.st.SuppressedOpenCount(r.Context(), sp.ID)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		d.Rows = append(d.Rows, suppressionRow{ID: sp.ID, Rule: sp.Rule, Cluster: sp.Cluster, Namespace: sp.Namespace,
			Workload: sp.Workload, Image: sp.Image, Reason: sp.Reason, CreatedBy: sp.CreatedBy, CreatedAt: sp.CreatedAt,
			ExpiresAt: sp.ExpiresAt, LastHit: sp.LastHit, Expired: exp, Hits: sp.Hits, Applied: sp.Applied, Held: held,
			AlertsHref: c.url("/alerts") + "?" + url.Values{"suppression": {strconv.FormatInt(sp.ID, 10)}}.Encode()})
	}
	for _, t := range []struct {
		v string
		n int
	}{{"active", d.Counts.Active}, {"expired", d.Counts.Expired}, {"all", d.Counts.Active + d.Counts.Expired}} {
		d.Tabs = append(d.Tabs, tab{Key: t.v, Href: c.url("/suppressions") + "?state=" + t.v,
			Label: fmt.Sprintf("%s (%d)", strings.ToUpper(t.v[:1])+t.v[1:], t.n), Current: d.State == t.v})
	}
	for _, e := range suppressionExpiries {
		d.Expiries = append(d.Expiries, option{e.v, e.l, e.v == "168h"})
	}
	c.render(w, r, http.StatusOK, "suppressions", d)
}

// readSuppressionForm reads the create form (the suppressions page's and
// the alert detail's): globs, reason, expiry choice.
func (c *Console) readSuppressionForm(r *http.Request, by string) (store.Suppression, bool, string) {
	f := r.PostForm
	sp := store.Suppression{Rule: strings.TrimSpace(f.Get("rule")), Cluster: strings.TrimSpace(f.Get("cluster")),
		Namespace: strings.TrimSpace(f.Get("namespace")), Workload: strings.TrimSpace(f.Get("workload")),
		Image: strings.TrimSpace(f.Get("image")), Reason: strings.TrimSpace(f.Get("reason")), CreatedBy: by}
	for _, v := range []string{sp.Rule, sp.Cluster, sp.Namespace, sp.Workload, sp.Image, sp.Reason} {
		if !cleanText(v) {
			return sp, false, "The suppression holds invalid characters."
		}
	}
	switch e := f.Get("expires"); e {
	case "never":
	case "1h", "24h", "168h", "720h":
		dur, _ := time.ParseDuration(e)
		sp.ExpiresAt = c.now().Add(dur)
	default:
		return sp, false, "Choose when the suppression expires."
	}
	return sp, f.Get("apply_to_existing") != "", ""
}

func suppressionAuditDetails(sp store.Suppression, apply bool) map[string]any {
	return map[string]any{"rule": sp.Rule, "cluster": sp.Cluster, "namespace": sp.Namespace, "workload": sp.Workload,
		"image": sp.Image, "reason": sp.Reason, "expires_at": sp.ExpiresAt, "apply_to_existing": apply}
}

func (c *Console) suppressionsBack(w http.ResponseWriter, r *http.Request, kind, msg string) {
	c.setFlash(w, kind, msg)
	back := c.url("/suppressions")
	if st := r.PostForm.Get("back_state"); st == "expired" || st == "all" {
		back += "?state=" + st
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// suppressionCreate creates a suppression from the page's form.
func (c *Console) suppressionCreate(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	sp, apply, problem := c.readSuppressionForm(r, p.Actor)
	if problem != "" {
		c.suppressionsBack(w, r, "error", problem)
		return
	}
	c.createSuppression(w, r, p.Actor, sp, apply, "suppressions", nil, func(kind, msg string) { c.suppressionsBack(w, r, kind, msg) })
}

// createSuppression stores a suppression read from a form, audits it with
// the API's action name and answers through back. The suppressions page and
// the alert page differ only in where they go back to and what the audit
// entry names (failTarget, extra details) when creation fails.
func (c *Console) createSuppression(w http.ResponseWriter, r *http.Request, actor string, sp store.Suppression, apply bool,
	failTarget string, extra map[string]any, back func(kind, msg string)) {
	created, err := c.st.CreateSuppressionApplied(r.Context(), sp, apply)
	details := suppressionAuditDetails(sp, apply)
	for k, v := range extra {
		details[k] = v
	}
	details["ok"] = err == nil
	target := failTarget
	if err == nil {
		target = fmt.Sprintf("suppression/%d", created.ID)
		details["applied"] = created.Applied
	}
	c.audit(r.Context(), actor, "suppression.create", target, details)
	switch {
	case errors.Is(err, store.ErrInvalid):
		back("error", "Suppression not created: "+err.Error())
	case err != nil:
		c.storeError(w, r, err)
	default:
		msg := fmt.Sprintf("Suppression %d created: matching alerts are counted, not shown as new.", created.ID)
		if apply {
			msg += fmt.Sprintf(" %d open alert(s) already stored were suppressed too.", created.Applied)
		}
		back("ok", msg)
	}
}

// suppressionExpire ends a suppression now; it stays listed (expired) with
// its hits, and the alerts it holds stay hidden until released.
func (c *Console) suppressionExpire(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	err := c.st.ExpireSuppression(r.Context(), id)
	held, _ := c.st.SuppressedOpenCount(r.Context(), id)
	c.audit(r.Context(), p.Actor, "suppression.expire", fmt.Sprintf("suppression/%d", id),
		map[string]any{"ok": err == nil, "still_suppressed_open_alerts": held})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	c.suppressionsBack(w, r, "ok", fmt.Sprintf("Suppression %d expired: new matching alerts show up again.%s", id, heldNote(held)))
}

// suppressionDelete removes a suppression (the API's DELETE).
func (c *Console) suppressionDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	err := c.st.DeleteSuppression(r.Context(), id)
	held, _ := c.st.SuppressedOpenCount(r.Context(), id)
	c.audit(r.Context(), p.Actor, "suppression.delete", fmt.Sprintf("suppression/%d", id),
		map[string]any{"ok": err == nil, "still_suppressed_open_alerts": held})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	c.suppressionsBack(w, r, "ok", fmt.Sprintf("Suppression %d deleted.%s", id, heldNote(held)))
}

func heldNote(held int) string {
	if held == 0 {
		return ""
	}
	return fmt.Sprintf(" %d open alert(s) it matched stay hidden until released (\"Release its alerts\" or the suppressed alert list).", held)
}

// suppressionApply suppresses the open alerts stored before the
// suppression that it matches.
func (c *Console) suppressionApply(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	n, err := c.st.ApplySuppression(r.Context(), id, p.Actor)
	c.audit(r.Context(), p.Actor, "suppression.apply", fmt.Sprintf("suppression/%d", id), map[string]any{"applied": n, "ok": err == nil})
	switch {
	case errors.Is(err, store.ErrInvalid):
		c.suppressionsBack(w, r, "error", "Not applied: "+err.Error())
	case err != nil:
		c.storeError(w, r, err)
	default:
		c.suppressionsBack(w, r, "ok", fmt.Sprintf("Suppression %d applied to %d open alert(s) already stored.", id, n))
	}
}

// suppressionRelease shows the open alerts a suppression holds again.
func (c *Console) suppressionRelease(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	released, kept, err := c.st.ReleaseSuppression(r.Context(), id, p.Actor)
	c.audit(r.Context(), p.Actor, "suppression.release", fmt.Sprintf("suppression/%d", id),
		map[string]any{"released": released, "kept": kept, "ok": err == nil})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	msg := fmt.Sprintf("%d alert(s) of suppression %d are visible again.", released, id)
	if kept > 0 {
		msg += fmt.Sprintf(" %d stay suppressed: a visible open alert with the same fingerprint already exists.", kept)
	}
	c.suppressionsBack(w, r, "ok", msg)
}
