package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// The administration pages (administrators only, as the API's rolesAdmin):
// users (create, change role, disable or enable, set a password), API
// tokens (create — the secret is shown once, on the answer page, never
// stored or put in a cookie — and revoke) and the audit log (filter by
// actor, action, target; paged). Changes are audited with the API's
// action names. An administrator cannot demote or disable their own
// account here (another administrator can), so the console cannot lock
// its last administrator out.

type adminTabs struct {
	Tabs []tab
}

func (c *Console) adminTabs(current string) adminTabs {
	var t adminTabs
	for _, x := range []struct{ k, l string }{{"users", "Users"}, {"tokens", "API tokens"}, {"audit", "Audit log"}} {
		t.Tabs = append(t.Tabs, tab{Key: x.k, Href: c.url("/settings/" + x.k), Label: x.l, Current: x.k == current})
	}
	return t
}

type usersData struct {
	*pageData
	adminTabs
	Users   []store.User
	Roles   []string
	Form    struct{ Username, Role, Err string }
	NewOpen bool
}

// roleNames are the roles, for the forms.
var roleNames = []string{string(store.RoleAdmin), string(store.RoleAnalyst), string(store.RoleCI), string(store.RoleAgent)}

func (c *Console) usersPage(w http.ResponseWriter, r *http.Request) {
	d := &usersData{pageData: c.pageData(r, "settings", "Users"), adminTabs: c.adminTabs("users")}
	d.Flash = c.takeFlash(w, r)
	d.Form.Role = string(store.RoleAnalyst)
	c.renderUsers(w, r, http.StatusOK, d)
}

func (c *Console) renderUsers(w http.ResponseWriter, r *http.Request, status int, d *usersData) {
	us, err := c.st.ListUsers(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Users, d.Roles = us, roleNames
	c.render(w, r, status, "users", d)
}

// Form limits (the API's store checks apply too).
const (
	maxUsername     = 64
	maxPasswordForm = 1024
	maxTokenName    = 128
)

func (c *Console) userCreate(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	f := r.PostForm
	d := &usersData{pageData: c.pageData(r, "settings", "Users"), adminTabs: c.adminTabs("users"), NewOpen: true}
	d.Form.Username, d.Form.Role = strings.TrimSpace(f.Get("username")), f.Get("role")
	fail := func(status int, msg string) {
		if len(d.Form.Username) > maxUsername || !cleanText(d.Form.Username) {
			d.Form.Username = ""
		}
		d.Form.Err = msg
		c.renderUsers(w, r, status, d)
	}
	pw := f.Get("password")
	switch {
	case d.Form.Username == "" || len(d.Form.Username) > maxUsername || !cleanText(d.Form.Username):
		fail(http.StatusBadRequest, fmt.Sprintf("Username: 1 to %d printable characters.", maxUsername))
		return
	case len(pw) > maxPasswordForm:
		fail(http.StatusBadRequest, "Password: too long.")
		return
	}
	role, err := store.ParseRole(d.Form.Role)
	if err != nil || (role != store.RoleAdmin && role != store.RoleAnalyst) {
		fail(http.StatusBadRequest, "Role: people log in as admin or analyst (ci and agent are for API tokens).")
		return
	}
	u, err := c.st.CreateUser(r.Context(), d.Form.Username, pw, role)
	switch {
	case errors.Is(err, store.ErrConflict):
		fail(http.StatusConflict, fmt.Sprintf("User %q exists.", d.Form.Username))
		return
	case errors.Is(err, store.ErrInvalid):
		fail(http.StatusBadRequest, err.Error())
		return
	case err != nil:
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), p.Actor, "user.create", "user/"+u.Username, map[string]any{"username": u.Username, "role": u.Role, "console": true})
	c.setFlash(w, "ok", fmt.Sprintf("User %s created (%s).", u.Username, u.Role))
	http.Redirect(w, r, c.url("/settings/users"), http.StatusSeeOther)
}

// userUpdate changes one user: action=role (with role), disable, enable
// or password (with password).
func (c *Console) userUpdate(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	name := r.PathValue("name")
	u, err := c.st.GetUser(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		c.errorPage(w, r, http.StatusNotFound, "No such user.")
		return
	}
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	self := p.Kind == "user" && p.Name == u.Username
	action := r.PostForm.Get("action")
	role, disabled := u.Role, u.Disabled
	details := map[string]any{"console": true}
	msg := ""
	switch action {
	case "role":
		nr, err := store.ParseRole(r.PostForm.Get("role"))
		if err != nil || (nr != store.RoleAdmin && nr != store.RoleAnalyst) {
			c.errorPage(w, r, http.StatusBadRequest, "Role: admin or analyst.")
			return
		}
		role, details["role"], msg = nr, string(nr), fmt.Sprintf("%s is now %s.", u.Username, nr)
	case "disable", "enable":
		disabled = action == "disable"
		details["disabled"] = disabled
		msg = fmt.Sprintf("%s %sd; their console sessions end.", u.Username, action)
		if action == "enable" {
			msg = fmt.Sprintf("%s enabled.", u.Username)
		}
	case "password":
		pw := r.PostForm.Get("password")
		if len(pw) > maxPasswordForm {
			c.errorPage(w, r, http.StatusBadRequest, "Password: too long.")
			return
		}
		if err := c.st.SetPassword(r.Context(), u.Username, pw); err != nil {
			if errors.Is(err, store.ErrInvalid) {
				c.setFlash(w, "error", err.Error())
				http.Redirect(w, r, c.url("/settings/users"), http.StatusSeeOther)
				return
			}
			c.serverError(w, r, err)
			return
		}
		c.audit(r.Context(), p.Actor, "user.update", "user/"+u.Username, map[string]any{"setPassword": true, "console": true})
		c.setFlash(w, "ok", fmt.Sprintf("Password of %s set; their console sessions end.", u.Username))
		http.Redirect(w, r, c.url("/settings/users"), http.StatusSeeOther)
		return
	default:
		c.errorPage(w, r, http.StatusBadRequest, "Unknown change.")
		return
	}
	if self && (disabled || role != store.RoleAdmin) {
		c.errorPage(w, r, http.StatusConflict, "You cannot demote or disable your own account: ask another administrator.")
		return
	}
	if err := c.st.UpdateUser(r.Context(), u.Username, role, disabled); err != nil {
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), p.Actor, "user.update", "user/"+u.Username, details)
	c.setFlash(w, "ok", msg)
	http.Redirect(w, r, c.url("/settings/users"), http.StatusSeeOther)
}

type tokensData struct {
	*pageData
	adminTabs
	Tokens  []store.Token
	Roles   []string
	Form    struct{ Name, Role, Expires, Err string }
	NewOpen bool
	// Secret is a token just created: shown once, on this answer only.
	Secret, SecretName string
	Expiries           []option
}

// tokenExpiries are the token form's choices.
var tokenExpiries = []struct{ v, l string }{{"720h", "in 30 days"}, {"2160h", "in 90 days"}, {"8760h", "in a year"}, {"never", "never"}}

func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request) {
	d := &tokensData{pageData: c.pageData(r, "settings", "API tokens"), adminTabs: c.adminTabs("tokens")}
	d.Flash = c.takeFlash(w, r)
	d.Form.Role, d.Form.Expires = string(store.RoleCI), "2160h"
	c.renderTokens(w, r, http.StatusOK, d)
}

func (c *Console) renderTokens(w http.ResponseWriter, r *http.Request, status int, d *tokensData) {
	ts, err := c.st.ListTokens(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Tokens, d.Roles = ts, roleNames
	for _, e := range tokenExpiries {
		d.Expiries = append(d.Expiries, option{e.v, e.l, d.Form.Expires == e.v})
	}
	// The secret page must not be cached or kept in history.
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, status, "tokens", d)
}

func (c *Console) tokenCreate(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	f := r.PostForm
	d := &tokensData{pageData: c.pageData(r, "settings", "API tokens"), adminTabs: c.adminTabs("tokens")}
	d.Form.Name, d.Form.Role, d.Form.Expires = strings.TrimSpace(f.Get("name")), f.Get("role"), f.Get("expires")
	fail := func(msg string) {
		if len(d.Form.Name) > maxTokenName || !cleanText(d.Form.Name) {
			d.Form.Name = ""
		}
		d.Form.Err, d.NewOpen = msg, true
		c.renderTokens(w, r, http.StatusBadRequest, d)
	}
	if d.Form.Name == "" || len(d.Form.Name) > maxTokenName || !cleanText(d.Form.Name) {
		fail(fmt.Sprintf("Name: 1 to %d printable characters (say who or what uses it).", maxTokenName))
		return
	}
	role, err := store.ParseRole(d.Form.Role)
	if err != nil {
		fail("Role: one of admin, analyst, ci, agent.")
		return
	}
	var exp time.Time
	switch d.Form.Expires {
	case "never":
	case "720h", "2160h", "8760h":
		dur, _ := time.ParseDuration(d.Form.Expires)
		exp = c.now().Add(dur)
	default:
		fail("Expiry: choose one of the listed expiries.")
		return
	}
	secret, t, err := c.st.CreateToken(r.Context(), d.Form.Name, role, exp, p.Actor)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), p.Actor, "token.create", "token/"+strconv.FormatInt(t.ID, 10),
		map[string]any{"name": t.Name, "role": t.Role, "prefix": t.Prefix, "console": true})
	c.log.InfoContext(r.Context(), "console: API token created", "actor", p.Actor, "token", t.Name, "role", t.Role)
	d.Secret, d.SecretName = secret, t.Name
	d.Form.Name, d.Form.Role, d.Form.Expires = "", string(store.RoleCI), "2160h"
	c.renderTokens(w, r, http.StatusCreated, d)
}

func (c *Console) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.errorPage(w, r, http.StatusNotFound, "No such token.")
		return
	}
	if err := c.st.RevokeToken(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.errorPage(w, r, http.StatusNotFound, "No such token.")
			return
		}
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), p.Actor, "token.revoke", "token/"+strconv.FormatInt(id, 10), map[string]any{"console": true})
	c.setFlash(w, "ok", "Token revoked: it no longer authenticates.")
	http.Redirect(w, r, c.url("/settings/tokens"), http.StatusSeeOther)
}

type auditData struct {
	*pageData
	adminTabs
	Entries               []store.AuditEntry
	Actor, Action, Target string
	Pager                 pager
	Filtered              bool
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &auditData{pageData: c.pageData(r, "settings", "Audit log"), adminTabs: c.adminTabs("audit")}
	d.Actor, d.Action, d.Target = q.text("actor", 200), q.text("action", 100), q.text("target", 300)
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	d.Filtered = d.Actor != "" || d.Action != "" || d.Target != ""
	const per = 50
	es, total, err := c.st.ListAudit(r.Context(), store.AuditFilter{Actor: d.Actor, Action: d.Action, Target: d.Target},
		store.Page{Limit: per, Offset: (page - 1) * per})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Entries = es
	d.Pager = newPager(c.url("/settings/audit"), q.v, page, per, total)
	c.render(w, r, http.StatusOK, "audit", d)
}
