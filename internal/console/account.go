package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

type accountData struct {
	*pageData
	Account *store.User
	FormErr string
	MinLen  int
}

func (c *Console) accountPage(w http.ResponseWriter, r *http.Request) {
	d := &accountData{pageData: c.pageData(r, "account", "Account"), MinLen: store.MinPasswordLength}
	d.Flash = c.takeFlash(w, r)
	c.renderAccount(w, r, http.StatusOK, d)
}

func (c *Console) renderAccount(w http.ResponseWriter, r *http.Request, status int, d *accountData) {
	if p := principalFrom(r.Context()); p.Kind == "user" {
		u, err := c.st.GetUser(r.Context(), p.Name)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		d.Account = u
	}
	c.render(w, r, status, "account", d)
}

// changePassword replaces the logged-in user's password after checking
// the current one, and moves the session to a new id (the old cookie,
// bound to the old password, stops working everywhere).
func (c *Console) changePassword(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	d := &accountData{pageData: c.pageData(r, "account", "Account"), MinLen: store.MinPasswordLength}
	if p.Kind != "user" {
		c.errorPage(w, r, http.StatusForbidden, "API token sessions have no password.")
		return
	}
	f := r.PostForm
	cur, next, confirm := f.Get("current"), f.Get("new"), f.Get("confirm")
	fail := func(status int, msg string) {
		d.FormErr = msg
		c.renderAccount(w, r, status, d)
	}
	switch {
	case len(next) < store.MinPasswordLength || len(next) > 1024:
		fail(http.StatusBadRequest, fmt.Sprintf("The new password must be %d to 1024 characters.", store.MinPasswordLength))
		return
	case next != confirm:
		fail(http.StatusBadRequest, "The new password and its confirmation differ.")
		return
	case next == cur:
		fail(http.StatusBadRequest, "The new password is the current one.")
		return
	case len(cur) > 1024:
		fail(http.StatusUnauthorized, "The current password is wrong.")
		return
	}
	ip, now := c.clientIP(r), c.now()
	if wait := c.limiter.blocked(ip, now); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		fail(http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts from your address. Try again in %s.", humanDuration(wait)))
		return
	}
	select {
	case c.hashSlots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	_, err := c.st.Authenticate(r.Context(), p.Name, cur)
	if err == nil {
		err = c.st.SetPassword(r.Context(), p.Name, next)
	}
	<-c.hashSlots
	switch {
	case errors.Is(err, store.ErrUnauthorized):
		c.limiter.fail(ip, now)
		c.log.WarnContext(r.Context(), "console: password change with a wrong current password", "actor", p.Actor, "client", ip)
		fail(http.StatusUnauthorized, "The current password is wrong.")
		return
	case errors.Is(err, store.ErrInvalid):
		fail(http.StatusBadRequest, err.Error())
		return
	case err != nil:
		c.serverError(w, r, err)
		return
	}
	u, err := c.st.GetUser(r.Context(), p.Name)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	c.revoked.add(p.Session.ID, time.Unix(p.Session.Expires, 0), now)
	s := session{ID: randomID(), Kind: "u", Subject: u.Username, Stamp: u.UpdatedAt.UnixMicro(), Issued: now.Unix(),
		Expires: now.Add(c.cfg.SessionTTL).Unix()}
	payload, _ := json.Marshal(s)
	http.SetCookie(w, c.cookie(sessionCookie, c.sign("session", payload), c.cfg.SessionTTL))
	c.audit(r.Context(), p.Actor, "user.password", "user/"+u.Username, nil)
	c.log.InfoContext(r.Context(), "console: password changed", "actor", p.Actor)
	c.setFlash(w, "ok", "Password changed. Other sessions of this user have ended.")
	http.Redirect(w, r, c.url("/account"), http.StatusSeeOther)
}
