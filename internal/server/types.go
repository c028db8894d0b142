package server

import (
	"encoding/json"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// The API's JSON shapes. They are separate from the store's types so the
// wire format is stable and named in one place (and in openapi.json).

type countsJSON struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Unknown  int `json:"unknown"`
	Total    int `json:"total"`
	KEV      int `json:"kev"`
	Fixable  int `json:"fixable"`
}

func toCounts(c store.FindingCounts) countsJSON {
	return countsJSON{c.Critical, c.High, c.Medium, c.Low, c.Unknown, c.Total(), c.KEV, c.Fixable}
}

type refJSON struct {
	Registry   string    `json:"registry"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag,omitempty"`
	FirstSeen  time.Time `json:"firstSeen,omitzero"`
	LastSeen   time.Time `json:"lastSeen,omitzero"`
}

type sightingJSON struct {
	Cluster   string    `json:"cluster"`
	Namespace string    `json:"namespace,omitempty"`
	Workload  string    `json:"workload,omitempty"`
	FirstSeen time.Time `json:"firstSeen,omitzero"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`
}

type imageJSON struct {
	Digest        string         `json:"digest"`
	ConfigDigest  string         `json:"configDigest,omitempty"`
	Platform      string         `json:"platform,omitempty"`
	OS            string         `json:"os,omitempty"`
	Size          int64          `json:"size"`
	Layers        []scan.Layer   `json:"layers,omitempty"`
	FirstSeen     time.Time      `json:"firstSeen,omitzero"`
	LastSeen      time.Time      `json:"lastSeen,omitzero"`
	LastScannedAt time.Time      `json:"lastScannedAt,omitzero"`
	LastMatchedAt time.Time      `json:"lastMatchedAt,omitzero"`
	PackageCount  int            `json:"packageCount"`
	Counts        countsJSON     `json:"counts"`
	Refs          []refJSON      `json:"refs,omitempty"`
	Sightings     []sightingJSON `json:"sightings,omitempty"`
}

func toImage(im *store.Image) imageJSON {
	out := imageJSON{Digest: im.Digest, ConfigDigest: im.ConfigDigest, Platform: im.Platform, OS: im.OS, Size: im.Size,
		Layers: im.Layers, FirstSeen: im.FirstSeen, LastSeen: im.LastSeen, LastScannedAt: im.LastScannedAt,
		LastMatchedAt: im.LastMatchedAt, PackageCount: im.PackageCount, Counts: toCounts(im.Counts)}
	for _, r := range im.Refs {
		out.Refs = append(out.Refs, refJSON{r.Registry, r.Repository, r.Tag, r.FirstSeen, r.LastSeen})
	}
	for _, g := range im.Sightings {
		out.Sightings = append(out.Sightings, sightingJSON{g.Cluster, g.Namespace, g.Workload, g.FirstSeen, g.LastSeen})
	}
	return out
}

type findingJSON struct {
	ID               int64           `json:"id"`
	ImageDigest      string          `json:"imageDigest"`
	VulnID           string          `json:"vulnId"`
	Aliases          []string        `json:"aliases,omitempty"`
	Ecosystem        string          `json:"ecosystem,omitempty"`
	Package          string          `json:"package"`
	Version          string          `json:"version"`
	PackageType      string          `json:"packageType,omitempty"`
	Location         string          `json:"location,omitempty"`
	InstalledVersion string          `json:"installedVersion,omitempty"`
	FixedVersions    []string        `json:"fixedVersions,omitempty"`
	Severity         vulndb.Severity `json:"severity"`
	CVSSScore        float64         `json:"cvssScore,omitempty"`
	KEV              bool            `json:"kev"`
	EPSS             float64         `json:"epss,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	MatchedBy        string          `json:"matchedBy,omitempty"`
	FirstSeen        time.Time       `json:"firstSeen,omitzero"`
	LastSeen         time.Time       `json:"lastSeen,omitzero"`
	ResolvedAt       time.Time       `json:"resolvedAt,omitzero"`
}

func toFinding(f *store.Finding) findingJSON {
	return findingJSON{f.ID, f.ImageDigest, f.VulnID, f.Aliases, f.Ecosystem, f.Package, f.Version, f.PackageType,
		f.Location, f.InstalledVersion, f.FixedVersions, f.Severity, f.CVSSScore, f.KEV, f.EPSS, f.Summary, f.MatchedBy,
		f.FirstSeen, f.LastSeen, f.ResolvedAt}
}

type eventJSON struct {
	ID          int64           `json:"id"`
	ImageDigest string          `json:"imageDigest"`
	FindingID   int64           `json:"findingId"`
	Kind        string          `json:"kind"`
	Source      string          `json:"source"`
	ScanID      int64           `json:"scanId,omitempty"`
	VulnID      string          `json:"vulnId"`
	Package     string          `json:"package"`
	Version     string          `json:"version"`
	Severity    vulndb.Severity `json:"severity"`
	KEV         bool            `json:"kev"`
	At          time.Time       `json:"at"`
}

func toEvent(e *store.FindingEvent) eventJSON {
	return eventJSON{e.ID, e.ImageDigest, e.FindingID, string(e.Kind), string(e.Source), e.ScanID, e.VulnID, e.Package,
		e.Version, e.Severity, e.KEV, e.At}
}

type scanJSON struct {
	ID            int64     `json:"id"`
	ImageDigest   string    `json:"imageDigest,omitempty"`
	TargetKind    string    `json:"targetKind,omitempty"`
	TargetName    string    `json:"targetName,omitempty"`
	Status        string    `json:"status"`
	Error         string    `json:"error,omitempty"`
	TriggeredBy   string    `json:"triggeredBy,omitempty"`
	ToolName      string    `json:"toolName,omitempty"`
	ToolVersion   string    `json:"toolVersion,omitempty"`
	DBBuilt       time.Time `json:"dbBuilt,omitzero"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	FinishedAt    time.Time `json:"finishedAt,omitzero"`
	DurationMS    int64     `json:"durationMs"`
	PackageCount  int       `json:"packageCount"`
	FindingCount  int       `json:"findingCount"`
	NewFindings   int       `json:"newFindings"`
	FixedFindings int       `json:"fixedFindings"`
	CreatedAt     time.Time `json:"createdAt"`
}

func toScan(r *store.ScanRecord) scanJSON {
	return scanJSON{r.ID, r.ImageDigest, r.TargetKind, r.TargetName, string(r.Status), r.Error, r.TriggeredBy, r.ToolName,
		r.ToolVersion, r.DBBuilt, r.StartedAt, r.FinishedAt, r.Duration.Milliseconds(), r.PackageCount, r.FindingCount,
		r.NewFindings, r.FixedFindings, r.CreatedAt}
}

type jobJSON struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Key         string          `json:"key,omitempty"`
	Payload     json.RawMessage `json:"payload"`
	State       string          `json:"state"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"maxAttempts"`
	RunAt       time.Time       `json:"runAt"`
	LeaseUntil  time.Time       `json:"leaseUntil,omitzero"`
	ClaimedBy   string          `json:"claimedBy,omitempty"`
	LastError   string          `json:"lastError,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	FinishedAt  time.Time       `json:"finishedAt,omitzero"`
}

func toJob(j *store.Job) jobJSON {
	return jobJSON{j.ID, j.Kind, j.Key, j.Payload, string(j.State), j.Attempts, j.MaxAttempts, j.RunAt, j.LeaseUntil,
		j.ClaimedBy, j.LastError, j.CreatedAt, j.UpdatedAt, j.FinishedAt}
}

type registryJSON struct {
	ID             int64     `json:"id"`
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	Kind           string    `json:"kind"`
	Repositories   []string  `json:"repositories"`
	Insecure       bool      `json:"insecure"`
	HasCredentials bool      `json:"hasCredentials"`
	CreatedAt      time.Time `json:"createdAt,omitzero"`
	UpdatedAt      time.Time `json:"updatedAt,omitzero"`
	LastSweepAt    time.Time `json:"lastSweepAt,omitzero"`
	LastSweepError string    `json:"lastSweepError,omitempty"`
	WebhookPath    string    `json:"webhookPath,omitempty"`
}

func toRegistry(r *store.Registry) registryJSON {
	out := registryJSON{ID: r.ID, Name: r.Name, URL: r.URL, Kind: string(r.Kind), Repositories: r.Repositories,
		Insecure: r.Insecure, HasCredentials: r.HasCredentials, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		LastSweepAt: r.LastSweepAt, LastSweepError: r.LastSweepError}
	if out.Repositories == nil {
		out.Repositories = []string{}
	}
	switch r.Kind {
	case store.RegistryDistribution:
		out.WebhookPath = "/api/v1/hooks/distribution"
	case store.RegistryHarbor:
		out.WebhookPath = "/api/v1/hooks/harbor"
	}
	return out
}

// registryInput creates or updates a registry. Credentials are write-only:
// on update, an absent (null) field keeps the stored value and "" clears it.
type registryInput struct {
	Name          string   `json:"name"`
	URL           string   `json:"url"`
	Kind          string   `json:"kind"`
	Repositories  []string `json:"repositories"`
	Insecure      bool     `json:"insecure"`
	Username      *string  `json:"username"`
	Password      *string  `json:"password"`
	WebhookSecret *string  `json:"webhookSecret"`
}

type tokenJSON struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	Prefix     string    `json:"prefix"`
	Role       string    `json:"role"`
	CreatedAt  time.Time `json:"createdAt"`
	CreatedBy  string    `json:"createdBy,omitempty"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	// Token is the secret, present only in the response that created it.
	Token string `json:"token,omitempty"`
}

func toToken(t *store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Prefix: t.Prefix, Role: string(t.Role), CreatedAt: t.CreatedAt,
		CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

type userJSON struct {
	ID          int64     `json:"id"`
	Username    string    `json:"username"`
	Role        string    `json:"role"`
	Disabled    bool      `json:"disabled"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	LastLoginAt time.Time `json:"lastLoginAt,omitzero"`
}

func toUser(u *store.User) userJSON {
	return userJSON{u.ID, u.Username, string(u.Role), u.Disabled, u.CreatedAt, u.UpdatedAt, u.LastLoginAt}
}

type auditJSON struct {
	ID      int64           `json:"id"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Details json.RawMessage `json:"details"`
}

func toAudit(e *store.AuditEntry) auditJSON {
	return auditJSON{e.ID, e.At, e.Actor, e.Action, e.Target, e.Details}
}

// mapSlice converts a slice with f.
func mapSlice[S, T any](in []S, f func(*S) T) []T {
	out := make([]T, len(in))
	for i := range in {
		out[i] = f(&in[i])
	}
	return out
}
