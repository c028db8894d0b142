package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// AccountRuleName is the rule name of the service-account source detector's
// alerts.
const AccountRuleName = "Service account used from an unusual source"

// accountRuleTags map the detector to MITRE ATT&CK like the YAML rules:
// stolen service-account tokens used from outside their pod (Valid
// Accounts).
var accountRuleTags = []string{"mitre_initial_access", "T1078", "mitre_credential_access", "T1528"}

// AccountConfig configures the detector of a service account used from a
// source IP it was not seen using while learning. It cannot be a rule: it
// needs state across events.
//
// For each service account (per cluster), the first Learn period after the
// account is first seen is learning: every source IP of its requests is
// remembered — all of the record's sourceIPs (X-Forwarded-For entries and the
// connection's peer), so a client cannot hide a new address behind a forged
// X-Forwarded-For naming a known one. After that, a request with an IP not
// remembered raises one alert, and the IP is remembered from then on (so a
// new, legitimate node alerts once, not on every request).
//
// With a Store the learned state survives restarts: it is loaded before
// the first batch (a load failure fails the batch, which the API server
// retries, rather than silently learning again — during a new learning
// period a stolen token would go unnoticed) and changes are saved after
// each batch's alerts were accepted. Without one, state is in memory and a
// restart learns again.
//
// Memory is bounded by MaxAccounts × MaxIPs; an address not seen for
// Forget is forgotten (age-out; in memory and in the store), which makes
// room for new ones. Accounts beyond MaxAccounts are not watched, and an
// account with MaxIPs current addresses alerts on further new ones without
// remembering them.
type AccountConfig struct {
	Disabled    bool
	Learn       time.Duration // default 24h
	MaxAccounts int           // default 10,000
	MaxIPs      int           // default 64 per account
	Forget      time.Duration // default 30 days
	// Store keeps the learned state across restarts (nil: memory only).
	Store AccountStore
}

// AccountSource is one learned (service account → source IP) pair, as an
// AccountStore keeps it.
type AccountSource struct {
	Cluster, Account, IP string
	// AccountFirst starts the account's learning period.
	AccountFirst time.Time
	// AlertedBy is "" for an address learned while learning, else the
	// audit id of the request that alerted on it.
	AlertedBy string
	LastSeen  time.Time
}

// AccountStore persists the detector's state (central's store).
type AccountStore interface {
	// LoadAccountSources returns the pairs seen at or after since.
	LoadAccountSources(ctx context.Context, since time.Time) ([]AccountSource, error)
	// SaveAccountSources upserts pairs and, when forgetBefore is set,
	// deletes those not seen since then.
	SaveAccountSources(ctx context.Context, srcs []AccountSource, forgetBefore time.Time) error
}

// touchEvery is how stale a remembered address's stored last-seen time
// may get before it is saved again: the age-out needs it roughly right,
// not a write per request.
const touchEvery = time.Hour

type ipState struct {
	// by is "" (learned) or the audit id of the request that alerted on
	// the address, so re-processing that same request (a retry after a
	// sink failure) alerts again instead of being silenced by its own
	// first pass.
	by          string
	last, saved time.Time
}

type accountState struct {
	first time.Time
	ips   map[string]*ipState
}

type dirtyKey struct{ acct, ip string }

type accountDetector struct {
	cfg   AccountConfig
	mu    sync.Mutex
	accts map[string]*accountState
	dirty map[dirtyKey]struct{}
	// loaded: the store's state was read (or there is no store).
	loaded    bool
	lastPrune time.Time
}

func newAccountDetector(cfg AccountConfig) *accountDetector {
	if cfg.Learn <= 0 {
		cfg.Learn = 24 * time.Hour
	}
	if cfg.MaxAccounts <= 0 {
		cfg.MaxAccounts = 10_000
	}
	if cfg.MaxIPs <= 0 {
		cfg.MaxIPs = 64
	}
	if cfg.Forget <= 0 {
		cfg.Forget = 30 * 24 * time.Hour
	}
	return &accountDetector{cfg: cfg, accts: map[string]*accountState{}, dirty: map[dirtyKey]struct{}{},
		loaded: cfg.Store == nil || cfg.Disabled}
}

func accountKey(cluster, user string) string { return cluster + "\x00" + user }

// load reads the stored state once; until it succeeds every batch fails.
func (d *accountDetector) load(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	done := d.loaded
	d.mu.Unlock()
	if done {
		return nil
	}
	srcs, err := d.cfg.Store.LoadAccountSources(ctx, now.Add(-d.cfg.Forget))
	if err != nil {
		return fmt.Errorf("load service-account sources: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded {
		return nil
	}
	for _, s := range srcs {
		key := accountKey(s.Cluster, s.Account)
		st := d.accts[key]
		if st == nil {
			if len(d.accts) >= d.cfg.MaxAccounts {
				continue
			}
			st = &accountState{first: s.AccountFirst, ips: map[string]*ipState{}}
			d.accts[key] = st
		}
		if s.AccountFirst.Before(st.first) {
			st.first = s.AccountFirst
		}
		if len(st.ips) < d.cfg.MaxIPs {
			st.ips[s.IP] = &ipState{by: s.AlertedBy, last: s.LastSeen, saved: s.LastSeen}
		}
	}
	d.loaded = true
	return nil
}

// observe records a request and reports the new source IP when it is one
// to alert on.
func (d *accountDetector) observe(cluster string, ae *rules.AuditEvent, at time.Time) (string, bool) {
	if d.cfg.Disabled || !strings.HasPrefix(ae.User, "system:serviceaccount:") || len(ae.SourceIPs) == 0 {
		return "", false
	}
	key := accountKey(cluster, ae.User)
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.accts[key]
	if st == nil {
		if len(d.accts) >= d.cfg.MaxAccounts {
			return "", false
		}
		st = &accountState{first: at, ips: map[string]*ipState{}}
		// Keys are substrings of a request body: copy them, so the map does
		// not pin whole batches in memory.
		key = strings.Clone(key)
		d.accts[key] = st
	}
	if at.Before(st.first) {
		st.first = at
		for ip := range st.ips {
			d.dirty[dirtyKey{key, ip}] = struct{}{}
		}
	}
	learning := at.Sub(st.first) < d.cfg.Learn
	alertIP := ""
	for _, ip := range ae.SourceIPs {
		s, known := st.ips[ip]
		if known {
			if at.After(s.last) {
				s.last = at
				if at.Sub(s.saved) >= touchEvery {
					d.dirty[dirtyKey{key, ip}] = struct{}{}
				}
			}
			// Alerted on before: again only for the very same request.
			if s.by != "" && alertIP == "" && s.by == ae.AuditID && ae.AuditID != "" {
				alertIP = ip
			}
			continue
		}
		if !learning && alertIP == "" {
			alertIP = ip
		}
		if len(st.ips) >= d.cfg.MaxIPs {
			d.evictStale(st, at)
		}
		if len(st.ips) < d.cfg.MaxIPs {
			by := ""
			if !learning {
				by = strings.Clone(ae.AuditID)
			}
			ip = strings.Clone(ip)
			st.ips[ip] = &ipState{by: by, last: at}
			d.dirty[dirtyKey{key, ip}] = struct{}{}
		}
	}
	return alertIP, alertIP != ""
}

// evictStale forgets an account's addresses not seen for Forget.
func (d *accountDetector) evictStale(st *accountState, now time.Time) {
	for ip, s := range st.ips {
		if now.Sub(s.last) >= d.cfg.Forget {
			delete(st.ips, ip)
		}
	}
}

// flush saves the changes since the last flush (after a batch's alerts
// were accepted) and, about once an hour, ages out what was not seen for
// Forget, in memory and in the store. A failed save keeps the changes for
// the next flush.
func (d *accountDetector) flush(ctx context.Context, now time.Time) error {
	if d.cfg.Store == nil {
		d.mu.Lock()
		if now.Sub(d.lastPrune) >= touchEvery {
			d.lastPrune = now
			d.prune(now)
		}
		d.mu.Unlock()
		return nil
	}
	d.mu.Lock()
	var forget time.Time
	if now.Sub(d.lastPrune) >= touchEvery {
		forget = now.Add(-d.cfg.Forget)
		d.prune(now)
	}
	if len(d.dirty) == 0 && forget.IsZero() {
		d.mu.Unlock()
		return nil
	}
	srcs := make([]AccountSource, 0, len(d.dirty))
	var keys []dirtyKey
	for k := range d.dirty {
		st := d.accts[k.acct]
		if st == nil {
			continue
		}
		s := st.ips[k.ip]
		if s == nil {
			continue
		}
		cluster, user, _ := strings.Cut(k.acct, "\x00")
		srcs = append(srcs, AccountSource{Cluster: cluster, Account: user, IP: k.ip, AccountFirst: st.first, AlertedBy: s.by, LastSeen: s.last})
		keys = append(keys, k)
	}
	clear(d.dirty)
	d.mu.Unlock()
	if err := d.cfg.Store.SaveAccountSources(ctx, srcs, forget); err != nil {
		d.mu.Lock()
		for _, k := range keys {
			d.dirty[k] = struct{}{}
		}
		d.mu.Unlock()
		return fmt.Errorf("save %d service-account sources: %w", len(srcs), err)
	}
	d.mu.Lock()
	for i, k := range keys {
		if st := d.accts[k.acct]; st != nil {
			if s := st.ips[k.ip]; s != nil && srcs[i].LastSeen.After(s.saved) {
				s.saved = srcs[i].LastSeen
			}
		}
	}
	if !forget.IsZero() {
		d.lastPrune = now
	}
	d.mu.Unlock()
	return nil
}

// prune drops addresses not seen for Forget, and accounts left without
// any (they learn again if they come back). Called with mu held.
func (d *accountDetector) prune(now time.Time) {
	for key, st := range d.accts {
		d.evictStale(st, now)
		if len(st.ips) == 0 {
			delete(d.accts, key)
		}
	}
}
