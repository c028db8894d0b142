// Command build-testimages builds Bulwark's test images into the test
// image cache, so that `go test` finds them ready (CI runs it before the
// tests; a build takes from seconds to minutes, a cached image none).
//
//	go run ./internal/testimage/cmd/build-testimages            # all images
//	go run ./internal/testimage/cmd/build-testimages go-vuln npm # some
//
// The cache is $BULWARK_TESTIMAGE_CACHE, else the user cache directory.
// Images that cannot be built on this machine (no root, no debootstrap, no
// npm) are reported and skipped unless -require is set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/testimage"
)

func main() {
	cacheDir := flag.String("cache", "", "cache directory (default $"+testimage.EnvCacheDir+" or the user cache dir)")
	require := flag.Bool("require", os.Getenv(testimage.EnvRequire) == "1", "fail when an image cannot be built on this machine (default from $"+testimage.EnvRequire+")")
	verbose := flag.Bool("v", false, "log every command's output")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: build-testimages [flags] [image...]\n\nimages:\n")
		for _, n := range testimage.Names() {
			fmt.Fprintf(flag.CommandLine.Output(), "  %-8s %s\n", n, testimage.Summary(n))
		}
		fmt.Fprintln(flag.CommandLine.Output())
		flag.PrintDefaults()
	}
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, log, *cacheDir, *require, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "build-testimages:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cacheDir string, require bool, names []string) error {
	if cacheDir == "" {
		d, err := testimage.DefaultCacheDir()
		if err != nil {
			return err
		}
		cacheDir = d
	}
	if len(names) == 0 {
		names = testimage.Names()
	}
	var failed, skipped []string
	for _, n := range names {
		start := time.Now()
		img, err := testimage.BuildImage(ctx, n, cacheDir, log)
		switch {
		case errors.Is(err, testimage.ErrUnavailable) && !require:
			log.Warn("skipped", "image", n, "reason", err)
			skipped = append(skipped, n)
			continue
		case err != nil:
			log.Error("failed", "image", n, "err", err)
			failed = append(failed, n)
			continue
		}
		bi, err := testimage.ReadBuildInfo(img)
		if err != nil {
			return err
		}
		fmt.Printf("%-8s %6.1f MB compressed  %6.1f MB uncompressed  %2d layers  built in %5.1fs  (this run %.1fs)  %s\n",
			n, float64(bi.CompressedSize)/1e6, float64(bi.UncompressedSize)/1e6, len(bi.Layers), bi.Seconds,
			time.Since(start).Seconds(), img.DockerArchive)
	}
	if len(skipped) > 0 {
		fmt.Printf("skipped (not buildable here): %s\n", strings.Join(skipped, ", "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}
