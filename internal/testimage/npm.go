package testimage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// npmAppDir is the npm project (package.json and package-lock.json, both
// committed) installed by `npm ci` into the npm and demo images.
const npmAppDir = "npm/app"

// NPMPackages returns the direct dependencies of the test npm project and
// the versions they are pinned to.
func NPMPackages() (map[string]string, error) {
	src, err := sourceDir()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(src, npmAppDir, "package.json"))
	if err != nil {
		return nil, err
	}
	var pj struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, fmt.Errorf("parse test npm package.json: %w", err)
	}
	return pj.Dependencies, nil
}

// npmCI installs the test npm project into appDir/node_modules with a real
// `npm ci` from the lock file (install scripts off: they are not needed to
// get the packages' files, and would run downloaded code as root).
func (b *builder) npmCI(ctx context.Context, appDir string) (string, error) {
	for _, f := range []string{"package.json", "package-lock.json"} {
		if err := copyFile(filepath.Join(appDir, f), filepath.Join(b.srcDir, npmAppDir, f), 0o644); err != nil {
			return "", fmt.Errorf("npm ci: %w", err)
		}
	}
	ver, err := command{name: "npm", args: []string{"--version"}}.output(ctx, b.log)
	if err != nil {
		return "", fmt.Errorf("npm ci: %w", err)
	}
	ver = strings.TrimSpace(ver)
	b.log.Info("npm ci", "npm", ver, "dir", appDir)
	c := command{name: "npm", dir: appDir,
		args: []string{"ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=warn"},
		env:  []string{"npm_config_update_notifier=false"}}
	if err := c.run(ctx, b.log); err != nil {
		return "", fmt.Errorf("npm ci: %w", err)
	}
	return ver, nil
}

func npmInputs(b *builder) ([]string, error) {
	h, err := hashTree(filepath.Join(b.srcDir, npmAppDir))
	if err != nil {
		return nil, err
	}
	return []string{"npm app " + h, "npm ci --ignore-scripts --omit=dev"}, nil
}

// aptDownload fetches a Debian package with `apt-get download` (no root
// needed) and unpacks it with dpkg-deb into root. It returns the version.
func (b *builder) aptDownload(ctx context.Context, dir, pkg, root string) (string, error) {
	dl := filepath.Join(dir, "debs")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return "", err
	}
	if err := (command{name: "apt-get", args: []string{"download", pkg}, dir: dl}).run(ctx, b.log); err != nil {
		return "", fmt.Errorf("apt-get download %s (run apt-get update first): %w", pkg, err)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	sort.Strings(debs)
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download %s: no .deb written", pkg)
	}
	deb := debs[len(debs)-1]
	if err := (command{name: "dpkg-deb", args: []string{"-x", deb, root}}).run(ctx, b.log); err != nil {
		return "", err
	}
	ver, err := command{name: "dpkg-deb", args: []string{"-f", deb, "Version"}}.output(ctx, b.log)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(ver), nil
}

func npmRecipe() *recipe {
	return &recipe{
		name:     "npm",
		summary:  "busybox-static base layer (Debian .deb) + /app/node_modules from npm ci of old electron, express, handlebars, https-proxy-agent, jquery, lodash, marked, minimist, moment",
		version:  1,
		inputs:   npmInputs,
		requires: []requirement{needNPM, needAptDownload},
		build: func(ctx context.Context, b *builder, dir string) (*imageSpec, error) {
			spec := &imageSpec{created: epoch, config: v1Config(defaultEnv, []string{"/bin/busybox", "sh"}, "/app")}
			base := filepath.Join(dir, "base")
			ver, err := b.aptDownload(ctx, dir, "busybox-static", base)
			if err != nil {
				return nil, err
			}
			if err := os.Symlink("busybox", filepath.Join(base, "bin", "sh")); err != nil {
				return nil, err
			}
			spec.notes = append(spec.notes, "busybox-static "+ver)
			ls, err := b.treeLayer(ctx, dir, base, treeFilter{}, normalised,
				"ADD busybox-static_"+ver+"_amd64.deb / # dpkg-deb -x; ln -s busybox /bin/sh")
			if err != nil {
				return nil, err
			}
			spec.layers = append(spec.layers, ls)

			app := filepath.Join(dir, "app")
			npmVer, err := b.npmCI(ctx, filepath.Join(app, "app"))
			if err != nil {
				return nil, err
			}
			spec.notes = append(spec.notes, "npm "+npmVer)
			ls, err = b.treeLayer(ctx, dir, app, treeFilter{}, normalised,
				"WORKDIR /app; COPY package.json package-lock.json ./; RUN npm ci --ignore-scripts --omit=dev # npm "+npmVer)
			if err != nil {
				return nil, err
			}
			spec.layers = append(spec.layers, ls)
			return spec, nil
		},
	}
}
