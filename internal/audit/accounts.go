package audit

import (
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
// new, legitimate node alerts once, not on every request). State is in memory: after a restart
// the detector learns again. Memory is bounded by MaxAccounts × MaxIPs;
// accounts beyond MaxAccounts are not watched, and an account with MaxIPs
// addresses alerts on further new ones without remembering them.
type AccountConfig struct {
	Disabled    bool
	Learn       time.Duration // default 24h
	MaxAccounts int           // default 10,000
	MaxIPs      int           // default 64 per account
}

type accountState struct {
	first time.Time
	// ips maps a source IP to "" (learned) or the audit id of the request
	// that alerted on it, so re-processing that same request (a retry after
	// a sink failure) alerts again instead of being silenced by its own
	// first pass.
	ips map[string]string
}

type accountDetector struct {
	cfg   AccountConfig
	mu    sync.Mutex
	accts map[string]*accountState
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
	return &accountDetector{cfg: cfg, accts: map[string]*accountState{}}
}

// observe records a request and reports the new source IP when it is one
// to alert on.
func (d *accountDetector) observe(cluster string, ae *rules.AuditEvent, at time.Time) (string, bool) {
	if d.cfg.Disabled || !strings.HasPrefix(ae.User, "system:serviceaccount:") || len(ae.SourceIPs) == 0 {
		return "", false
	}
	key := cluster + "\x00" + ae.User
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.accts[key]
	if st == nil {
		if len(d.accts) >= d.cfg.MaxAccounts {
			return "", false
		}
		st = &accountState{first: at, ips: map[string]string{}}
		// Keys are substrings of a request body: copy them, so the map does
		// not pin whole batches in memory.
		d.accts[strings.Clone(key)] = st
	}
	if at.Before(st.first) {
		st.first = at
	}
	learning := at.Sub(st.first) < d.cfg.Learn
	alertIP := ""
	for _, ip := range ae.SourceIPs {
		by, known := st.ips[ip]
		switch {
		case known && by == "":
		case known:
			// Alerted on before: again only for the very same request.
			if alertIP == "" && by == ae.AuditID && ae.AuditID != "" {
				alertIP = ip
			}
		case learning:
			if len(st.ips) < d.cfg.MaxIPs {
				st.ips[strings.Clone(ip)] = ""
			}
		default:
			if len(st.ips) < d.cfg.MaxIPs {
				st.ips[strings.Clone(ip)] = strings.Clone(ae.AuditID)
			}
			if alertIP == "" {
				alertIP = ip
			}
		}
	}
	return alertIP, alertIP != ""
}
