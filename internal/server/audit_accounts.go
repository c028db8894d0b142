package server

import (
	"context"
	"time"

	"github.com/bulwark-security/bulwark/internal/audit"
	"github.com/bulwark-security/bulwark/internal/store"
)

// AuditAccountStore keeps the audit service-account detector's learned
// state in central's store (migration 0011), so a restart of central
// neither learns again nor forgets what it alerted on. It adapts the
// store's types to package audit's (neither imports the other).
type AuditAccountStore struct{ St *store.Store }

// LoadAccountSources implements audit.AccountStore.
func (a AuditAccountStore) LoadAccountSources(ctx context.Context, since time.Time) ([]audit.AccountSource, error) {
	rows, err := a.St.LoadAuditAccountSources(ctx, since, 0)
	if err != nil {
		return nil, err
	}
	out := make([]audit.AccountSource, len(rows))
	for i, r := range rows {
		out[i] = audit.AccountSource{Cluster: r.Cluster, Account: r.Account, IP: r.IP, AccountFirst: r.AccountFirst,
			AlertedBy: r.AlertedBy, LastSeen: r.LastSeen}
	}
	return out, nil
}

// SaveAccountSources implements audit.AccountStore.
func (a AuditAccountStore) SaveAccountSources(ctx context.Context, srcs []audit.AccountSource, forgetBefore time.Time) error {
	rows := make([]store.AuditAccountSource, len(srcs))
	for i, s := range srcs {
		rows[i] = store.AuditAccountSource{Cluster: s.Cluster, Account: s.Account, IP: s.IP, AccountFirst: s.AccountFirst,
			AlertedBy: s.AlertedBy, LastSeen: s.LastSeen}
	}
	_, err := a.St.SaveAuditAccountSources(ctx, rows, forgetBefore)
	return err
}

// accountConfig is cfg with the store keeping the detector's state.
func accountConfig(cfg audit.AccountConfig, st *store.Store) audit.AccountConfig {
	cfg.Store = AuditAccountStore{St: st}
	return cfg
}
