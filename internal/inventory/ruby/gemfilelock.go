package ruby

import (
	"bytes"
	"context"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// MaxGemfileLockSize bounds how much of a Gemfile.lock is read.
const MaxGemfileLockSize = 16 << 20

// GemfileLock reports the gems a Bundler project locked.
type GemfileLock struct{}

// NewGemfileLock returns the "language/ruby/gemfilelock" extractor.
func NewGemfileLock() *GemfileLock { return &GemfileLock{} }

// Name implements inventory.Extractor.
func (*GemfileLock) Name() string { return "language/ruby/gemfilelock" }

// Version implements inventory.Extractor.
func (*GemfileLock) Version() int { return 1 }

// Required takes Gemfile.lock and gems.locked (Bundler's alternative name),
// except inside an installed gem's directory.
func (*GemfileLock) Required(path string, _ inventory.FileInfo) bool {
	i := strings.LastIndexByte(path, '/')
	base := path[i+1:]
	if base != "Gemfile.lock" && base != "gems.locked" {
		return false
	}
	if i < 0 {
		return true
	}
	// path = .../gems/<gem dir>/Gemfile.lock ?
	dir := path[:i]
	j := strings.LastIndexByte(dir, '/')
	if j < 0 {
		return true
	}
	parent := dir[:j]
	return !(parent == "gems" || strings.HasSuffix(parent, "/gems"))
}

// Extract implements inventory.Extractor.
func (e *GemfileLock) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := inventory.ReadAll(in, MaxGemfileLockSize)
	if err != nil {
		return inventory.Output{}, err
	}
	b = inventory.TrimBOM(b) // a BOM would hide the first section
	pkgs, err := parseGemfileLock(ctx, b, in.Path, e.Name())
	if err != nil {
		return inventory.Output{}, err
	}
	return inventory.Output{Packages: pkgs}, nil
}

// parseGemfileLock reads the lock file format Bundler writes:
//
//	GEM
//	  remote: https://rubygems.org/
//	  specs:
//	    nokogiri (1.13.10-x86_64-linux)
//	      racc (~> 1.4)
//
//	DEPENDENCIES
//	  nokogiri (~> 1.13)
//	  mylib!
//
// Section names start in column 0; specs are indented by four spaces and
// their own dependencies by six.
func parseGemfileLock(ctx context.Context, b []byte, location, extractor string) ([]inventory.Package, error) {
	var (
		section  string
		inSpecs  bool
		pkgs     []inventory.Package
		seen     = make(map[string]bool)
		direct   = make(map[string]bool)
		haveDeps bool
	)
	for n := 0; len(b) > 0; n++ {
		if n%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		indent := len(line) - len(bytes.TrimLeft(line, " "))
		body := line[indent:]
		if indent == 0 {
			section, inSpecs = string(body), false
			if section == "DEPENDENCIES" {
				haveDeps = true
			}
			continue
		}
		switch section {
		case "GEM":
			if indent == 2 {
				inSpecs = string(body) == "specs:"
				continue
			}
			if !inSpecs || indent != 4 {
				continue
			}
			name, version, ok := nameVersion(body)
			if !ok {
				continue
			}
			// Bundler appends the platform after the first "-":
			// "nokogiri (1.13.10-x86_64-linux)".
			version, _, _ = strings.Cut(version, "-")
			if !validName(name) || !validVersion(version) || seen[name+"@"+version] {
				continue
			}
			seen[name+"@"+version] = true
			pkgs = append(pkgs, newPackage(name, version, location, extractor))
		case "DEPENDENCIES":
			if indent == 2 {
				name := body
				if i := bytes.IndexAny(name, " !"); i >= 0 {
					name = name[:i]
				}
				direct[string(name)] = true
			}
		}
	}
	for i := range pkgs {
		pkgs[i].Indirect = haveDeps && !direct[pkgs[i].Name]
	}
	inventory.SortPackages(pkgs)
	return pkgs, nil
}

// nameVersion splits "name (version)".
func nameVersion(b []byte) (name, version string, ok bool) {
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 || len(b) < sp+3 || b[sp+1] != '(' || b[len(b)-1] != ')' {
		return "", "", false
	}
	return string(b[:sp]), string(b[sp+2 : len(b)-1]), true
}
