package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// uploadFlags send a scan result to central.
type uploadFlags struct {
	server   string
	token    string
	serverCA string
}

func addUploadFlags(cmd *cobra.Command, f *uploadFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "upload the result to this Bulwark central (https://host:8443) after the scan")
	fl.StringVar(&f.token, "token", "", "API token for --server, role ci (env BULWARK_TOKEN)")
	fl.StringVar(&f.serverCA, "server-ca", "", "PEM file with the CA (or self-signed certificate) that signed --server's certificate")
}

// uploadIfAsked posts res to central's POST /api/v1/scans when --server
// is set. The server's certificate is always verified (against the system
// roots, or --server-ca); plain http:// is allowed only to a loopback
// address.
func (a *app) uploadIfAsked(ctx context.Context, f *uploadFlags, res *scan.Result) error {
	if f.server == "" {
		return nil
	}
	if f.token == "" {
		return fmt.Errorf("--server needs --token (or BULWARK_TOKEN)")
	}
	out, err := uploadResult(ctx, f.server, f.token, f.serverCA, res)
	if err != nil {
		return fmt.Errorf("upload to %s: %w", f.server, err)
	}
	fmt.Fprintf(a.env.Stderr, "bulwark: uploaded to %s: scan %d of %s (%d findings, %d new, %d fixed)\n",
		f.server, out.ScanID, out.ImageDigest, out.FindingCount, out.NewFindings, out.FixedFindings)
	return nil
}

// uploadResponse is the part of central's answer the CLI reports.
type uploadResponse struct {
	ScanID        int64  `json:"scanId"`
	ImageDigest   string `json:"imageDigest"`
	FindingCount  int    `json:"findingCount"`
	NewFindings   int    `json:"newFindings"`
	FixedFindings int    `json:"fixedFindings"`
}

func uploadResult(ctx context.Context, server, token, caFile string, res *scan.Result) (*uploadResponse, error) {
	var out uploadResponse
	if err := postToCentral(ctx, server, token, caFile, "/api/v1/scans", res, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
