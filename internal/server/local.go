package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// ScanLocal scans an image central can read directly (an archive or
// layout on its disk: "docker-archive:PATH", "oci-archive:PATH",
// "oci-layout:DIR"), matches it against the loaded database and stores
// it. `bulwark server --demo` stores the bundled demo image this way.
func (s *Server) ScanLocal(ctx context.Context, ref, triggeredBy string) (*store.ScanSaved, error) {
	start := time.Now()
	res, err := s.scanner.Image(ctx, ref, image.Options{Keychain: anonymous{}}, nil)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", ref, err)
	}
	if err := s.vdb.match(ctx, res); err != nil && !errors.Is(err, errNoVulnDB) {
		return nil, fmt.Errorf("match %s: %w", ref, err)
	}
	if res.FinishedAt.IsZero() {
		res.FinishedAt = time.Now().UTC()
	}
	fileUnderImageID(res)
	saved, err := s.st.SaveScan(ctx, res, store.ScanMeta{TriggeredBy: triggeredBy})
	if err != nil {
		return nil, err
	}
	s.metrics.scanDuration.Observe(time.Since(start).Seconds())
	s.metrics.scansStored.WithLabelValues("local").Inc()
	return saved, nil
}

// TestRegistry checks that central reaches and authenticates to the
// registry with this id (the console's "Test connection").
func (s *Server) TestRegistry(ctx context.Context, id int64) error {
	r, err := s.st.GetRegistry(ctx, id)
	if err != nil {
		return err
	}
	if res := testConnection(ctx, r); !res.OK {
		return errors.New(res.Error)
	}
	return nil
}

// fileUnderImageID gives a scan of a docker-save archive, which has no
// manifest digest, its config digest (the image ID) as identity, so it
// can be stored. The same image pushed to a registry is filed under its
// manifest digest: a separate entry.
func fileUnderImageID(res *scan.Result) {
	if res.Target.Digest == "" && res.Target.Kind == "image" && res.Target.ImageID != "" {
		res.Target.Digest = res.Target.ImageID
	}
}

// DBStatus describes the loaded vulnerability database (the console's
// "DB freshness"); an error when none is loaded.
func (s *Server) DBStatus(context.Context) (*vulndb.Status, error) {
	st, ok := s.vdb.status()
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNoVulnDB, s.vdb.lastError())
	}
	return &st, nil
}
