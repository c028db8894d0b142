package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

const (
	sessionCookie = "bulwark_session"
	loginCookie   = "bulwark_login"
	flashCookie   = "bulwark_flash"
	// maxCookieLen bounds what is decoded from a cookie.
	maxCookieLen = 4096
	// csrfField is the form field (and csrfHeader the header) carrying the
	// CSRF token.
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	// maxFormBytes bounds a POST body: the console's forms are small.
	maxFormBytes = 64 << 10
)

// session is what the signed cookie carries. It names the user or token
// and is checked against the store on every request.
type session struct {
	// ID identifies this login (for logout and the CSRF token).
	ID string `json:"i"`
	// Kind is "u" (user) or "t" (API token).
	Kind string `json:"k"`
	// Subject is the username, or the token's id.
	Subject string `json:"s"`
	Issued  int64  `json:"t"`
	Expires int64  `json:"e"`
	// Stamp is the user's UpdatedAt (Unix microseconds) at login: changing
	// a user's password or role moves it, which ends their sessions.
	Stamp int64 `json:"u,omitempty"`
}

// principal is who a request acts as.
type principal struct {
	Name string
	Kind string // "user" or "token"
	Role store.Role
	// Actor is the audit log's name for it ("user:alice", "token:ci").
	Actor   string
	Session session
	CSRF    string
}

func (p *principal) Admin() bool { return p != nil && p.Role == store.RoleAdmin }

type ctxKey struct{}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(ctxKey{}).(*principal)
	return p
}

// sign returns base64url(payload) "." base64url(HMAC(key, purpose, payload)).
// purpose separates the cookie kinds so one can never stand in for another.
func (c *Console) sign(purpose string, payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac(c.keys[0], purpose, payload))
}

func mac(key []byte, purpose string, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("bulwark-console/" + purpose + "\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

// verify checks a signed value under the current and old keys and returns
// its payload.
func (c *Console) verify(purpose, v string) ([]byte, bool) {
	if len(v) == 0 || len(v) > maxCookieLen {
		return nil, false
	}
	p64, m64, ok := strings.Cut(v, ".")
	if !ok {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, false
	}
	got, err := base64.RawURLEncoding.DecodeString(m64)
	if err != nil || len(got) != sha256.Size {
		return nil, false
	}
	for _, k := range c.keys {
		if hmac.Equal(got, mac(k, purpose, payload)) {
			return payload, true
		}
	}
	return nil, false
}

// parseSession decodes and checks a session cookie value: signature,
// shape and expiry. It does not consult the store.
func (c *Console) parseSession(v string, now time.Time) (session, bool) {
	payload, ok := c.verify("session", v)
	if !ok {
		return session{}, false
	}
	var s session
	if err := json.Unmarshal(payload, &s); err != nil {
		return session{}, false
	}
	if (s.Kind != "u" && s.Kind != "t") || s.Subject == "" || len(s.ID) != 32 {
		return session{}, false
	}
	if now.Unix() >= s.Expires || s.Issued > now.Add(5*time.Minute).Unix() {
		return session{}, false
	}
	return s, true
}

// session returns the request's valid session, if any.
func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	s, ok := c.parseSession(ck.Value, c.now())
	if !ok || c.revoked.has(s.ID, c.now()) {
		return session{}, false
	}
	// A logout on another replica: the store has it (one primary-key
	// lookup). A store error fails closed.
	revoked, err := c.st.SessionRevoked(r.Context(), s.ID)
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: session revocation check", "err", err)
		return session{}, false
	}
	if revoked {
		c.revoked.add(s.ID, time.Unix(s.Expires, 0), c.now())
		return session{}, false
	}
	return s, true
}

func (c *Console) csrfToken(purpose, id string) string {
	return base64.RawURLEncoding.EncodeToString(mac(c.keys[0], "csrf/"+purpose, []byte(id)))
}

// csrfOK compares a submitted token with the expected one for id under
// every key (a key rotation keeps open forms working).
func (c *Console) csrfOK(purpose, id, got string) bool {
	if got == "" || len(got) > 128 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(got)
	if err != nil {
		return false
	}
	for _, k := range c.keys {
		if hmac.Equal(b, mac(k, "csrf/"+purpose, []byte(id))) {
			return true
		}
	}
	return false
}

// sameOrigin rejects requests a browser marks as coming from another site.
// Clients that send neither header (curl) still need the CSRF token.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false // includes "null"
	}
	return strings.EqualFold(u.Host, r.Host)
}

func (c *Console) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: c.base + "/", HttpOnly: true, Secure: c.cfg.SecureCookie,
		SameSite: http.SameSiteStrictMode}
	if maxAge > 0 {
		// Max-Age, not Expires: the browser's clock may disagree with ours.
		ck.MaxAge = int(maxAge / time.Second)
	} else {
		ck.MaxAge = -1
	}
	return ck
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// auth requires a valid session, loads its principal from the store, and
// checks CSRF and origin on every non-GET request.
func (c *Console) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				c.redirectToLogin(w, r)
				return
			}
			http.Error(w, "session expired: log in again", http.StatusForbidden)
			return
		}
		p, err := c.loadPrincipal(r.Context(), s)
		if err != nil {
			if !errors.Is(err, errSessionGone) {
				c.serverError(w, r, err)
				return
			}
			http.SetCookie(w, c.cookie(sessionCookie, "", 0))
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				c.redirectToLogin(w, r)
				return
			}
			http.Error(w, "session expired: log in again", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !sameOrigin(r) {
				c.log.WarnContext(r.Context(), "console: cross-origin request refused", "path", r.URL.Path, "actor", p.Actor,
					"origin", r.Header.Get("Origin"))
				c.errorPage(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)), http.StatusForbidden,
					"This request came from another site and was refused.")
				return
			}
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)), http.StatusBadRequest, "The form could not be read.")
				return
			}
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostForm.Get(csrfField)
			}
			if !c.csrfOK("session", s.ID, tok) {
				c.log.WarnContext(r.Context(), "console: CSRF token missing or wrong", "path", r.URL.Path, "actor", p.Actor)
				c.errorPage(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)), http.StatusForbidden,
					"The form's security token is missing or out of date. Reload the page and try again.")
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

// adminOnly refuses the request unless the principal is an admin.
func (c *Console) adminOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !principalFrom(r.Context()).Admin() {
			c.errorPage(w, r, http.StatusForbidden, "Only administrators can do this.")
			return
		}
		next(w, r)
	}
}

var errSessionGone = errors.New("session no longer valid")

// consoleRole reports whether a role may use the console: people log in
// as admins or analysts; ci and agent credentials are for machines.
func consoleRole(r store.Role) bool { return r == store.RoleAdmin || r == store.RoleAnalyst }

func (c *Console) loadPrincipal(ctx context.Context, s session) (*principal, error) {
	p := &principal{Session: s, CSRF: c.csrfToken("session", s.ID)}
	now := c.now()
	switch s.Kind {
	case "u":
		u, err := c.st.GetUser(ctx, s.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errSessionGone
		}
		if err != nil {
			return nil, err
		}
		if u.Disabled || u.UpdatedAt.UnixMicro() != s.Stamp || !consoleRole(u.Role) {
			return nil, errSessionGone
		}
		p.Name, p.Kind, p.Role, p.Actor = u.Username, "user", u.Role, "user:"+u.Username
	case "t":
		id, err := strconv.ParseInt(s.Subject, 10, 64)
		if err != nil {
			return nil, errSessionGone
		}
		toks, err := c.st.ListTokens(ctx)
		if err != nil {
			return nil, err
		}
		var t *store.Token
		for i := range toks {
			if toks[i].ID == id {
				t = &toks[i]
				break
			}
		}
		if t == nil || !t.RevokedAt.IsZero() || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) || !consoleRole(t.Role) {
			return nil, errSessionGone
		}
		p.Name, p.Kind, p.Role, p.Actor = t.Name, "token", t.Role, "token:"+t.Name
	default:
		return nil, errSessionGone
	}
	return p, nil
}

// safeNext returns next when it is a local console path, else "/".
func safeNext(next string) string {
	if next == "" || len(next) > 1024 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

func (c *Console) redirectToLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Path
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	target := c.url("/login")
	if n := safeNext(next); n != "/" {
		target += "?next=" + url.QueryEscape(n)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// loginData feeds the login template.
type loginData struct {
	*pageData
	Next     string
	Username string
	Error    string
	Tab      string
	Form     string // login CSRF token
}

// loginNonce returns the pre-login nonce from its cookie, or makes a new
// one and sets the cookie. The login form's CSRF token is bound to it.
func (c *Console) loginNonce(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(loginCookie); err == nil {
		if b, ok := c.verify("login", ck.Value); ok && len(b) == 32 {
			return string(b)
		}
	}
	n := randomID()
	http.SetCookie(w, c.cookie(loginCookie, c.sign("login", []byte(n)), 2*time.Hour))
	return n
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if s, ok := c.session(r); ok {
		if _, err := c.loadPrincipal(r.Context(), s); err == nil {
			http.Redirect(w, r, c.url(next), http.StatusSeeOther)
			return
		}
	}
	c.renderLogin(w, r, http.StatusOK, loginData{Next: next, Tab: tabParam(r.URL.Query().Get("tab"))})
}

func tabParam(t string) string {
	if t == "token" {
		return "token"
	}
	return "password"
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	d.pageData = c.pageData(r, "login", "Log in")
	d.Form = c.csrfToken("login", c.loginNonce(w, r))
	c.render(w, r, status, "login", d)
}

// clientIP is the address login failures are counted against: the peer,
// or the last X-Forwarded-For hop when the console sits behind a trusted
// proxy. IPv6 addresses count per /64, what one host usually holds.
func (c *Console) clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if c.cfg.TrustProxyHeaders {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			host = strings.TrimSpace(parts[len(parts)-1])
		}
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		if len(host) > 64 {
			host = host[:64]
		}
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

func (c *Console) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, r, http.StatusBadRequest, loginData{Error: "The form could not be read."})
		return
	}
	f := r.PostForm
	d := loginData{Next: safeNext(f.Get("next")), Tab: tabParam(f.Get("method"))}
	if len(f.Get("username")) <= 256 {
		d.Username = f.Get("username")
	}
	nonceOK := false
	if ck, err := r.Cookie(loginCookie); err == nil {
		if b, ok := c.verify("login", ck.Value); ok {
			nonceOK = c.csrfOK("login", string(b), f.Get(csrfField))
		}
	}
	if !sameOrigin(r) || !nonceOK {
		c.log.WarnContext(r.Context(), "console: login without a valid form token", "client", c.clientIP(r))
		d.Error = "The login form expired. Please try again."
		c.renderLogin(w, r, http.StatusForbidden, d)
		return
	}
	ip := c.clientIP(r)
	now := c.now()
	if wait := c.limiter.blocked(ip, now); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		d.Error = fmt.Sprintf("Too many failed logins from your address. Try again in %s.", humanDuration(wait))
		c.renderLogin(w, r, http.StatusTooManyRequests, d)
		return
	}
	// Password hashing is the expensive part of a login; bound how many
	// run at once so a flood cannot exhaust memory.
	select {
	case c.hashSlots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	var s session
	var p principal
	var err error
	if d.Tab == "token" {
		var t *store.Token
		t, err = c.st.VerifyToken(r.Context(), strings.TrimSpace(f.Get("token")))
		if err == nil {
			s = session{Kind: "t", Subject: strconv.FormatInt(t.ID, 10)}
			p = principal{Name: t.Name, Role: t.Role, Actor: "token:" + t.Name}
		}
	} else {
		var u *store.User
		user, pw := f.Get("username"), f.Get("password")
		if len(user) > 256 || len(pw) > 1024 {
			err = store.ErrUnauthorized
		} else {
			u, err = c.st.Authenticate(r.Context(), user, pw)
		}
		if err == nil {
			// Authenticate updated last_login_at, not updated_at, so the
			// stamp read here stays valid.
			s = session{Kind: "u", Subject: u.Username, Stamp: u.UpdatedAt.UnixMicro()}
			p = principal{Name: u.Username, Role: u.Role, Actor: "user:" + u.Username}
		}
	}
	<-c.hashSlots
	if err != nil {
		if !errors.Is(err, store.ErrUnauthorized) {
			c.serverError(w, r, err)
			return
		}
		c.limiter.fail(ip, now)
		c.log.WarnContext(r.Context(), "console: login failed", "client", ip, "method", d.Tab, "username", d.Username)
		if d.Tab == "token" {
			d.Error = "That token is not valid."
		} else {
			d.Error = "Wrong username or password."
		}
		c.renderLogin(w, r, http.StatusUnauthorized, d)
		return
	}
	if !consoleRole(p.Role) {
		c.log.WarnContext(r.Context(), "console: login refused for role", "actor", p.Actor, "role", p.Role)
		d.Error = fmt.Sprintf("The %s role is for machines and cannot use the console.", p.Role)
		c.renderLogin(w, r, http.StatusForbidden, d)
		return
	}
	s.ID = randomID()
	s.Issued = now.Unix()
	s.Expires = now.Add(c.cfg.SessionTTL).Unix()
	payload, _ := json.Marshal(s)
	http.SetCookie(w, c.cookie(sessionCookie, c.sign("session", payload), c.cfg.SessionTTL))
	http.SetCookie(w, c.cookie(loginCookie, "", 0))
	c.audit(r.Context(), p.Actor, "console.login", "", map[string]string{"method": d.Tab, "client": ip})
	c.log.InfoContext(r.Context(), "console: login", "actor", p.Actor, "client", ip)
	http.Redirect(w, r, c.url(d.Next), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	exp := time.Unix(p.Session.Expires, 0)
	c.revoked.add(p.Session.ID, exp, c.now())
	if err := c.st.RevokeSession(r.Context(), p.Session.ID, exp); err != nil {
		// This replica refuses the session; the others would accept a
		// copied cookie until it expires.
		c.log.ErrorContext(r.Context(), "console: revoke session for every replica", "err", err)
	}
	http.SetCookie(w, c.cookie(sessionCookie, "", 0))
	c.audit(r.Context(), p.Actor, "console.logout", "", nil)
	http.Redirect(w, r, c.url("/login"), http.StatusSeeOther)
}

// audit records a user action; a failure is logged, not shown: the action
// itself already happened.
func (c *Console) audit(ctx context.Context, actor, action, target string, details any) {
	var raw json.RawMessage
	if details != nil {
		raw, _ = json.Marshal(details)
	}
	if _, err := c.st.Audit(ctx, store.AuditEntry{Actor: actor, Action: action, Target: target, Details: raw}); err != nil {
		c.log.ErrorContext(ctx, "console: audit", "action", action, "err", err)
	}
}

// loginLimiter counts failed logins per client address in fixed windows.
// It holds at most cap addresses: under a flood from many addresses the
// oldest windows are forgotten first.
type loginLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	cap    int
	m      map[string]*failureWindow
}

type failureWindow struct {
	n     int
	start time.Time
}

func newLoginLimiter(max int, window time.Duration, cap int) *loginLimiter {
	return &loginLimiter{max: max, window: window, cap: cap, m: map[string]*failureWindow{}}
}

// blocked returns how long ip must wait, or 0.
func (l *loginLimiter) blocked(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.m[ip]
	if !ok {
		return 0
	}
	end := f.start.Add(l.window)
	if !now.Before(end) {
		delete(l.m, ip)
		return 0
	}
	if f.n >= l.max {
		return end.Sub(now)
	}
	return 0
}

func (l *loginLimiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.m[ip]
	if ok && !now.Before(f.start.Add(l.window)) {
		ok = false
	}
	if !ok {
		if len(l.m) >= l.cap {
			l.evict(now)
		}
		f = &failureWindow{start: now}
		l.m[ip] = f
	}
	f.n++
}

// evict drops expired windows, and the oldest one if none had expired.
func (l *loginLimiter) evict(now time.Time) {
	var oldest string
	var oldestT time.Time
	for k, f := range l.m {
		if !now.Before(f.start.Add(l.window)) {
			delete(l.m, k)
			continue
		}
		if oldest == "" || f.start.Before(oldestT) {
			oldest, oldestT = k, f.start
		}
	}
	if len(l.m) >= l.cap && oldest != "" {
		delete(l.m, oldest)
	}
}

func (l *loginLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// revokedSessions remembers logged-out session ids until they would have
// expired anyway: the per-process cache in front of the store's list
// (Store.RevokeSession), which every replica checks for sessions this
// one has not seen revoked.
type revokedSessions struct {
	mu  sync.Mutex
	cap int
	m   map[string]time.Time
}

func newRevokedSessions(cap int) *revokedSessions {
	return &revokedSessions{cap: cap, m: map[string]time.Time{}}
}

func (rs *revokedSessions) add(id string, until, now time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.m) >= rs.cap {
		var soonest string
		var soonestT time.Time
		for k, t := range rs.m {
			if t.Before(now) {
				delete(rs.m, k)
			} else if soonest == "" || t.Before(soonestT) {
				soonest, soonestT = k, t
			}
		}
		if len(rs.m) >= rs.cap {
			delete(rs.m, soonest)
		}
	}
	rs.m[id] = until
}

func (rs *revokedSessions) has(id string, now time.Time) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	t, ok := rs.m[id]
	if ok && !now.Before(t) {
		delete(rs.m, id)
		return false
	}
	return ok
}
