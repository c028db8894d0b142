// Command gen-demo regenerates internal/demo/data (the demo image, the demo
// vulnerability database and its README) from real sources: the test image
// recipes of internal/testimage, the golang.org/x/vulndb module zip and
// ../shared/vulndata. Run it from the repository root:
//
//	go run ./internal/testimage/cmd/gen-demo
//
// It needs what the debian test image needs (root, debootstrap), plus
// npm and the Go module proxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/bulwark-security/bulwark/internal/testimage"
)

func main() {
	out := flag.String("out", "", "output directory (default internal/demo/data of the repository)")
	vulndata := flag.String("vulndata", "", "shared vulnerability data directory (default ../shared/vulndata of the repository)")
	vulndbZip := flag.String("vulndb-zip", "", "golang.org/x/vulndb module zip (default: go mod download "+testimage.VulnDBModule+"@"+testimage.VulnDBVersion+")")
	cacheDir := flag.String("cache", "", "test image cache (default $"+testimage.EnvCacheDir+" or the user cache dir)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, log, *out, *vulndata, *vulndbZip, *cacheDir); err != nil {
		fmt.Fprintln(os.Stderr, "gen-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, out, vulndata, vulndbZip, cacheDir string) error {
	if out == "" {
		root, err := testimage.RepoRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, "internal", "demo", "data")
	}
	if vulndata == "" {
		d, err := testimage.VulnDataDir()
		if err != nil {
			return err
		}
		vulndata = d
	}
	if cacheDir == "" {
		d, err := testimage.DefaultCacheDir()
		if err != nil {
			return err
		}
		cacheDir = d
	}
	return testimage.GenerateDemo(ctx, testimage.DemoOptions{
		CacheDir: cacheDir, OutDir: out, VulnDataDir: vulndata, VulnDBZip: vulndbZip, Log: log,
	})
}
