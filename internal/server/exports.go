package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulwark-security/bulwark/internal/export"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Exports: continuous delivery of alerts (and optionally findings and
// posture results) to SIEMs and chat. Configurations come from the
// configuration file (Config.Exports, origin "config", read-only here)
// and from the API (origin "api"); both live in the store, so every
// replica delivers the same set. Secrets are write-only: accepted in
// requests, sealed in the store, reported only as the names of those set.

// maxExportBody bounds an export configuration request.
const maxExportBody = 256 << 10

// exportView is an export as the API shows it: its configuration without
// secrets, the names of the secrets that are set, and its delivery status.
type exportView struct {
	ID         int64           `json:"id"`
	Origin     string          `json:"origin"`
	Config     json.RawMessage `json:"config"`
	SecretsSet []string        `json:"secrets_set"`
	Status     exportStatus    `json:"status"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

type exportStatus struct {
	Pending       int        `json:"pending"`
	Dead          int        `json:"dead"`
	LagSeconds    float64    `json:"lag_seconds"`
	Delivered     int64      `json:"delivered"`
	Failures      int        `json:"consecutive_failures"`
	RetryAt       *time.Time `json:"retry_at,omitempty"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// view builds the API shape of a stored export (secrets never included).
func (s *Server) exportView(ctx context.Context, e *store.Export) (exportView, error) {
	v := exportView{ID: e.ID, Origin: e.Origin, Config: e.Config, SecretsSet: []string{}, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	// Rebuild the public configuration with name, type and enabled, which
	// the store keeps in columns.
	if c, err := export.FromStore(&store.Export{Name: e.Name, Type: e.Type, Enabled: e.Enabled, Config: e.Config}); err == nil {
		if b, err := json.Marshal(c); err == nil {
			v.Config = b
		}
	}
	if e.HasSecrets {
		if full, err := s.st.GetExportSecrets(ctx, e.ID); err == nil {
			if c, err := export.FromStore(full); err == nil {
				v.SecretsSet = append(v.SecretsSet, c.Secrets.Names()...)
			}
		}
	}
	st, err := s.st.ExportOutboxStats(ctx, e.ID)
	if err != nil {
		return v, err
	}
	v.Status = exportStatus{Pending: st.Pending, Dead: st.Dead, Delivered: e.Delivered, Failures: e.Failures,
		RetryAt: timePtr(e.RetryAt), LastSuccessAt: timePtr(e.LastSuccessAt), LastError: e.LastError, LastErrorAt: timePtr(e.LastErrorAt)}
	if !st.Oldest.IsZero() {
		v.Status.LagSeconds = time.Since(st.Oldest).Seconds()
	}
	return v, nil
}

func (s *Server) listExports(c *call) error {
	exps, err := s.st.ListExports(c.r.Context())
	if err != nil {
		return err
	}
	out := make([]exportView, 0, len(exps))
	for i := range exps {
		v, err := s.exportView(c.r.Context(), &exps[i])
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": out, "types": export.Types})
}

// replyExport answers with e as the API shows it.
func (s *Server) replyExport(c *call, status int, e *store.Export) error {
	v, err := s.exportView(c.r.Context(), e)
	if err != nil {
		return err
	}
	return c.JSON(status, v)
}

func (s *Server) getExport(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	e, err := s.st.GetExport(c.r.Context(), id)
	if err != nil {
		return err
	}
	return s.replyExport(c, http.StatusOK, e)
}

// readExportConfig reads a configuration body (strictly: unknown fields
// are errors); normalize also checks it.
func (c *call) readExportConfig(normalize bool) (*export.Config, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxExportBody))
	if err != nil {
		return nil, err
	}
	parse := export.DecodeJSON
	if normalize {
		parse = export.ParseJSON
	}
	cfg, err := parse(body)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return cfg, nil
}

func (s *Server) createExport(c *call) error {
	cfg, err := c.readExportConfig(true)
	if err != nil {
		return err
	}
	c.audit("export/"+cfg.Name, map[string]any{"name": cfg.Name, "type": cfg.Type, "secrets_set": cfg.Secrets.Names()})
	row, err := cfg.ToStore(store.ExportOriginAPI)
	if err != nil {
		return badRequest("%v", err)
	}
	e, err := s.st.CreateExport(c.r.Context(), row)
	if err != nil {
		return err
	}
	s.nudgeExports()
	return s.replyExport(c, http.StatusCreated, e)
}

var errConfigExport = errorf(http.StatusConflict, "config_export", "this export is defined in the configuration file; change it there")

// apiExport loads the export of the {id} path parameter for a change,
// records it in the audit log by name, and refuses one defined in the
// configuration file (the API must not edit what the file will restore).
func (s *Server) apiExport(c *call) (int64, *store.Export, error) {
	id, err := c.idParam("id")
	if err != nil {
		return 0, nil, err
	}
	e, err := s.st.GetExport(c.r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	c.audit(fmt.Sprintf("export/%d", id), map[string]any{"name": e.Name})
	if e.Origin == store.ExportOriginConfig {
		return 0, nil, errConfigExport
	}
	return id, e, nil
}

func (s *Server) updateExport(c *call) error {
	id, old, err := s.apiExport(c)
	if err != nil {
		return err
	}
	cfg, err := c.readExportConfig(false)
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("export/%d", id), map[string]any{"name": cfg.Name, "type": cfg.Type, "secrets_set": cfg.Secrets.Names()})
	// Secrets are write-only: an update that does not repeat them keeps
	// the stored ones (merged field by field, so one can be rotated alone;
	// a renamed export keeps them too: they are re-sealed to the new name).
	if old.HasSecrets {
		full, err := s.st.GetExportSecrets(c.r.Context(), id)
		if err != nil {
			return err
		}
		stored, err := export.FromStore(full)
		if err != nil {
			return err
		}
		merged := stored.Secrets
		for _, p := range []struct {
			dst *string
			v   string
		}{{&merged.HMACKey, cfg.Secrets.HMACKey}, {&merged.Token, cfg.Secrets.Token},
			{&merged.Password, cfg.Secrets.Password}, {&merged.APIKey, cfg.Secrets.APIKey}, {&merged.WebhookURL, cfg.Secrets.WebhookURL}} {
			if p.v != "" {
				*p.dst = p.v
			}
		}
		cfg.Secrets = merged
	}
	if err := cfg.Normalize(); err != nil {
		return badRequest("%v", err)
	}
	row, err := cfg.ToStore(store.ExportOriginAPI)
	if err != nil {
		return badRequest("%v", err)
	}
	row.ID = id
	e, err := s.st.UpdateExport(c.r.Context(), row, false)
	if err != nil {
		return err
	}
	s.nudgeExports()
	return s.replyExport(c, http.StatusOK, e)
}

func (s *Server) deleteExport(c *call) error {
	id, _, err := s.apiExport(c)
	if err != nil {
		return err
	}
	if err := s.st.DeleteExport(c.r.Context(), id); err != nil {
		return err
	}
	s.nudgeExports()
	return nil
}

// testExport delivers one synthetic alert now, outside the outbox, and
// reports the receiver's answer.
func (s *Server) testExport(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("export/%d", id), nil)
	e, err := s.st.GetExportSecrets(c.r.Context(), id)
	if err != nil {
		return err
	}
	cfg, err := export.FromStore(e)
	if err == nil {
		err = cfg.Normalize()
	}
	if err != nil {
		return c.JSON(http.StatusOK, map[string]any{"ok": false, "error": err.Error()})
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), time.Duration(cfg.Timeout)+5*time.Second)
	defer cancel()
	if err := export.Test(ctx, cfg, export.Deps{Logger: s.log, Version: s.cfg.Version}); err != nil {
		return c.JSON(http.StatusOK, map[string]any{"ok": false, "error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

type deadLetterView struct {
	ID        int64           `json:"id"`
	Kind      string          `json:"kind"`
	Key       string          `json:"key"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Record    json.RawMessage `json:"record"`
}

func (s *Server) listDeadExports(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	p, err := c.page()
	if err != nil {
		return err
	}
	if _, err := s.st.GetExport(c.r.Context(), id); err != nil {
		return err
	}
	recs, total, err := s.st.ListDeadExports(c.r.Context(), id, p)
	if err != nil {
		return err
	}
	out := make([]deadLetterView, 0, len(recs))
	for _, r := range recs {
		out = append(out, deadLetterView{ID: r.ID, Kind: r.Kind, Key: r.Key, Attempts: r.Attempts, LastError: r.LastError,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Record: r.Payload})
	}
	return c.JSON(http.StatusOK, newList(out, total, p))
}

func (s *Server) retryDeadExports(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	var body struct {
		IDs []int64 `json:"ids"`
	}
	if c.r.ContentLength != 0 {
		if err := c.decode(&body, 64<<10, true); err != nil {
			return err
		}
	}
	c.audit(fmt.Sprintf("export/%d", id), map[string]any{"ids": len(body.IDs)})
	if _, err := s.st.GetExport(c.r.Context(), id); err != nil {
		return err
	}
	n, err := s.st.RetryDeadExports(c.r.Context(), id, body.IDs)
	if err != nil {
		return err
	}
	s.nudgeExports()
	return c.JSON(http.StatusOK, map[string]any{"requeued": n})
}

// syncConfigExports makes the store's configuration-file exports match
// cfgs: new ones are created, changed ones updated, removed ones deleted
// (with their queues). An API export of the same name is an error: names
// are unique.
func syncConfigExports(ctx context.Context, st *store.Store, cfgs []export.Config) error {
	existing, err := st.ListExports(ctx)
	if err != nil {
		return err
	}
	byName := map[string]*store.Export{}
	for i := range existing {
		byName[existing[i].Name] = &existing[i]
	}
	want := map[string]bool{}
	for i := range cfgs {
		c := cfgs[i]
		if err := c.Normalize(); err != nil {
			return err
		}
		want[c.Name] = true
		row, err := c.ToStore(store.ExportOriginConfig)
		if err != nil {
			return err
		}
		old := byName[c.Name]
		switch {
		case old == nil:
			if _, err := st.CreateExport(ctx, row); err != nil {
				return fmt.Errorf("export %s from the configuration file: %w", c.Name, err)
			}
		case old.Origin != store.ExportOriginConfig:
			return fmt.Errorf("export %s is defined in the configuration file and through the API: rename or delete one", c.Name)
		default:
			row.ID = old.ID
			if _, err := st.UpdateExport(ctx, row, false); err != nil {
				return fmt.Errorf("export %s from the configuration file: %w", c.Name, err)
			}
		}
	}
	for _, e := range existing {
		if e.Origin == store.ExportOriginConfig && !want[e.Name] {
			if err := st.DeleteExport(ctx, e.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// nudgeExports wakes the delivery workers (after a change or an enqueue
// on this replica; other replicas notice at their next refresh).
func (s *Server) nudgeExports() {
	if s.exports != nil {
		s.exports.Nudge()
	}
}
