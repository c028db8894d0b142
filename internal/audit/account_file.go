package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/fsutil"
)

// FileAccountStore keeps the service-account detector's learned state in
// one JSON file, for `bulwark audit watch` outside central (central keeps
// it in its store, migration 0011): a restart of the watcher neither
// learns again — a fresh 24 h learning window is when a stolen token would
// be learned as normal — nor forgets which request it alerted on.
//
// Format (version 1), one object per account with its addresses:
//
//	{"version":1,"saved":"2026-11-28T00:00:00Z","accounts":[
//	  {"cluster":"prod","account":"system:serviceaccount:shop:deployer","first":"2026-11-27T10:00:00Z",
//	   "ips":[{"ip":"10.0.0.7","last":"2026-11-28T00:00:00Z"},{"ip":"203.0.113.9","last":"…","alerted_by":"<audit id>"}]}]}
//
// The whole state is written after each batch whose alerts were accepted
// and that changed it (new addresses, an hourly last-seen touch, the
// age-out), atomically (fsutil.WriteFileAtomic: temporary file, fsync,
// rename, directory fsync), so a crash leaves the old file or the new one.
// Reading is bounded (MaxAccountStateBytes, MaxAccountStatePairs, field
// lengths, plausible times). An unreadable file — corrupt, oversized, of
// an unknown version — is set aside as <file>.corrupt with a warning and
// the detector learns from scratch (nothing better is possible); an I/O
// error reading it fails the load, so the detector retries instead of
// learning again silently.
type FileAccountStore struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex
	loaded bool
	pairs  map[pairKey]AccountSource
}

type pairKey struct{ cluster, account, ip string }

// AccountStateVersion is the format version FileAccountStore writes.
const AccountStateVersion = 1

// Bounds on the state file read at start: 10,000 accounts × 64 addresses
// (the detector's default caps) of at most a few hundred bytes each.
const (
	MaxAccountStateBytes = 128 << 20
	MaxAccountStatePairs = 10_000 * 64
)

// ErrAccountState: the state file is corrupt, too large or of an unknown
// version.
var ErrAccountState = errors.New("service-account state file unusable")

type accountStateFile struct {
	Version  int                   `json:"version"`
	Saved    time.Time             `json:"saved"`
	Accounts []accountStateAccount `json:"accounts"`
}

type accountStateAccount struct {
	Cluster string           `json:"cluster"`
	Account string           `json:"account"`
	First   time.Time        `json:"first"`
	IPs     []accountStateIP `json:"ips"`
}

type accountStateIP struct {
	IP        string    `json:"ip"`
	Last      time.Time `json:"last"`
	AlertedBy string    `json:"alerted_by,omitempty"`
}

// Lock takes the state file for this process (path+".lock", released by
// release or when the process dies); a second process using the same file
// gets an error saying so instead of each rewriting the other's state.
func (f *FileAccountStore) Lock() (release func(), err error) {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return nil, fmt.Errorf("account state directory: %w", err)
	}
	return lockState(f.path)
}

// NewFileAccountStore keeps the state at path (its directory is created
// at the first save). log may be nil.
func NewFileAccountStore(path string, log *slog.Logger) *FileAccountStore {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FileAccountStore{path: path, log: log, now: time.Now, pairs: map[pairKey]AccountSource{}}
}

// LoadAccountSources implements AccountStore: the pairs seen at or after
// since. A missing file is a first start (nothing learned).
func (f *FileAccountStore) LoadAccountSources(_ context.Context, since time.Time) ([]AccountSource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded {
		if err := f.read(); err != nil {
			return nil, err
		}
		f.loaded = true
	}
	out := make([]AccountSource, 0, len(f.pairs))
	for _, p := range f.pairs {
		if since.IsZero() || !p.LastSeen.Before(since) {
			out = append(out, p)
		}
	}
	// Most recently seen first, as central's store returns them (the
	// detector keeps the first MaxIPs per account).
	slices.SortFunc(out, func(a, b AccountSource) int { return b.LastSeen.Compare(a.LastSeen) })
	return out, nil
}

// read loads the file into pairs (called with mu held).
func (f *FileAccountStore) read() error {
	fh, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load service-account state %s: %w", f.path, err)
	}
	st, perr := parseAccountState(fh)
	fh.Close()
	if perr != nil {
		aside := f.path + ".corrupt"
		if err := os.Rename(f.path, aside); err != nil {
			return fmt.Errorf("load service-account state %s: %w (and setting it aside failed: %v)", f.path, perr, err)
		}
		f.log.Warn("service-account state unusable: set aside, learning from scratch", "path", f.path, "aside", aside, "err", perr)
		return nil
	}
	for _, a := range st.Accounts {
		for _, ip := range a.IPs {
			f.pairs[pairKey{a.Cluster, a.Account, ip.IP}] = AccountSource{Cluster: a.Cluster, Account: a.Account, IP: ip.IP,
				AccountFirst: a.First, AlertedBy: ip.AlertedBy, LastSeen: ip.Last}
		}
	}
	return nil
}

// parseAccountState decodes and checks one state file (the fuzzed parser).
func parseAccountState(r io.Reader) (*accountStateFile, error) {
	var st accountStateFile
	if err := fsutil.DecodeJSONLimited(r, MaxAccountStateBytes, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAccountState, err)
	}
	if st.Version != AccountStateVersion {
		return nil, fmt.Errorf("%w: version %d (this version reads %d)", ErrAccountState, st.Version, AccountStateVersion)
	}
	n := 0
	for _, a := range st.Accounts {
		if a.Account == "" || len(a.Account) > 1024 || len(a.Cluster) > 1024 {
			return nil, fmt.Errorf("%w: empty or oversized account or cluster", ErrAccountState)
		}
		if !plausible(a.First) {
			return nil, fmt.Errorf("%w: account %q: implausible first-seen time %v", ErrAccountState, clipString(a.Account, 80), a.First)
		}
		for _, ip := range a.IPs {
			if n++; n > MaxAccountStatePairs {
				return nil, fmt.Errorf("%w: more than %d account addresses", ErrAccountState, MaxAccountStatePairs)
			}
			if ip.IP == "" || len(ip.IP) > 256 || len(ip.AlertedBy) > 256 || !plausible(ip.Last) {
				return nil, fmt.Errorf("%w: account %q: bad address entry", ErrAccountState, clipString(a.Account, 80))
			}
		}
	}
	return &st, nil
}

func plausible(t time.Time) bool { y := t.Year(); return y >= 2000 && y <= 9999 }

// SaveAccountSources implements AccountStore: it merges the changed pairs
// (the earliest AccountFirst and the latest LastSeen win, AlertedBy is
// replaced — as central's store does), forgets pairs not seen since
// forgetBefore when it is set, and rewrites the file atomically. On a
// write error the merged state stays in memory and the error is returned,
// so the detector keeps the changes for its next flush.
func (f *FileAccountStore) SaveAccountSources(_ context.Context, srcs []AccountSource, forgetBefore time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range srcs {
		if s.Account == "" || s.IP == "" || s.AccountFirst.IsZero() || s.LastSeen.IsZero() {
			return fmt.Errorf("save service-account state: account source %q %q: account, ip and times are required", s.Account, s.IP)
		}
		k := pairKey{s.Cluster, s.Account, s.IP}
		if cur, ok := f.pairs[k]; ok {
			if cur.AccountFirst.Before(s.AccountFirst) {
				s.AccountFirst = cur.AccountFirst
			}
			if cur.LastSeen.After(s.LastSeen) {
				s.LastSeen = cur.LastSeen
			}
		}
		f.pairs[k] = s
	}
	if !forgetBefore.IsZero() {
		for k, p := range f.pairs {
			if p.LastSeen.Before(forgetBefore) {
				delete(f.pairs, k)
			}
		}
	}
	return f.write()
}

// write encodes every pair, grouped by account in a stable order, and
// replaces the file (called with mu held).
func (f *FileAccountStore) write() error {
	byAcct := map[[2]string]*accountStateAccount{}
	for _, p := range f.pairs {
		k := [2]string{p.Cluster, p.Account}
		a := byAcct[k]
		if a == nil {
			a = &accountStateAccount{Cluster: p.Cluster, Account: p.Account, First: p.AccountFirst.UTC()}
			byAcct[k] = a
		}
		if p.AccountFirst.Before(a.First) {
			a.First = p.AccountFirst.UTC()
		}
		a.IPs = append(a.IPs, accountStateIP{IP: p.IP, Last: p.LastSeen.UTC(), AlertedBy: p.AlertedBy})
	}
	st := accountStateFile{Version: AccountStateVersion, Saved: f.now().UTC(), Accounts: make([]accountStateAccount, 0, len(byAcct))}
	for _, a := range byAcct {
		slices.SortFunc(a.IPs, func(x, y accountStateIP) int { return cmp.Compare(x.IP, y.IP) })
		st.Accounts = append(st.Accounts, *a)
	}
	slices.SortFunc(st.Accounts, func(x, y accountStateAccount) int {
		return cmp.Or(cmp.Compare(x.Cluster, y.Cluster), cmp.Compare(x.Account, y.Account))
	})
	b, err := json.Marshal(&st)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(f.path), 0o700); err == nil {
			err = fsutil.WriteFileAtomic(f.path, b, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("save service-account state %s: %w", f.path, err)
	}
	return nil
}

// clipString shortens s for an error message.
func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
