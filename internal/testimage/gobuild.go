package testimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// goToolchain is the old Go release the test programs are built with, so
// that the standard library in the binaries carries known vulnerabilities.
// The go command downloads it from the module proxy (GOTOOLCHAIN).
const goToolchain = "go1.21.0"

// GoToolchain is the Go release the test binaries are built with.
const GoToolchain = goToolchain

// goProgram is a test program under testdata/src.
type goProgram struct {
	name string
	// modules are the vulnerable module versions the program pins; tests
	// check that the built binary's build info records them.
	modules map[string]string
}

// goPrograms are the programs of the go-vuln image. Each pins old module
// versions with records in golang.org/x/vulndb (see each main.go).
var goPrograms = []goProgram{
	{name: "ginapp", modules: map[string]string{
		"github.com/gin-gonic/gin": "v1.5.0",
		"gopkg.in/yaml.v2":         "v2.2.2",
		"golang.org/x/sys":         "v0.0.0-20190813064441-fde4db37ae7a",
	}},
	{name: "jwtssh", modules: map[string]string{
		"github.com/dgrijalva/jwt-go": "v3.2.0+incompatible",
		"golang.org/x/crypto":         "v0.0.0-20200622213623-75b288015ac9",
	}},
	{name: "textnet", modules: map[string]string{
		"golang.org/x/net":  "v0.0.0-20220722155237-a158d28d115b",
		"golang.org/x/text": "v0.3.7",
	}},
}

// GoPrograms returns the test programs built into the go-vuln image (at
// /usr/local/bin/NAME) and the module versions each pins.
func GoPrograms() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, p := range goPrograms {
		m := map[string]string{}
		for k, v := range p.modules {
			m[k] = v
		}
		out[p.name] = m
	}
	return out
}

// goBuildFlags are the flags of every test binary; stripped adds
// -ldflags=-s -w (the demo's binaries, as many release builds are).
func goBuildFlags(stripped bool) []string {
	f := []string{"build", "-trimpath", "-buildvcs=false"}
	if stripped {
		f = append(f, "-ldflags=-s -w")
	}
	return f
}

// goBuildEnv pins everything that changes the bytes of a binary, so a
// rebuild on another machine gives the same file.
var goBuildEnv = []string{
	"GOTOOLCHAIN=" + goToolchain,
	"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1",
	"GOWORK=off", "GOFLAGS=-mod=readonly",
}

// buildGoProgram builds testdata/src/NAME into out.
func (b *builder) buildGoProgram(ctx context.Context, name, out string, stripped bool) error {
	goCmd, err := goCommand()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := append(goBuildFlags(stripped), "-o", out, ".")
	c := command{name: goCmd, args: args, dir: filepath.Join(b.srcDir, "src", name), env: goBuildEnv}
	b.log.Info("go build", "program", name, "toolchain", goToolchain, "stripped", stripped)
	if err := c.run(ctx, b.log); err != nil {
		return fmt.Errorf("build Go program %s: %w", name, err)
	}
	return os.Chmod(out, 0o755)
}

func goInputs(b *builder) ([]string, error) {
	h, err := hashTree(filepath.Join(b.srcDir, "src"))
	if err != nil {
		return nil, err
	}
	return []string{
		"go sources " + h,
		"go env " + strings.Join(goBuildEnv, " "),
		"go flags " + strings.Join(goBuildFlags(false), " "),
	}, nil
}

func goVulnRecipe() *recipe {
	return &recipe{
		name:     "go-vuln",
		summary:  "Go binaries (" + goToolchain + ", -trimpath) pinning old x/net, x/text, x/crypto, gin, yaml.v2, jwt-go; one layer per binary, no OS",
		version:  1,
		inputs:   goInputs,
		requires: []requirement{needGoToolchain},
		build: func(ctx context.Context, b *builder, dir string) (*imageSpec, error) {
			spec := &imageSpec{created: epoch, config: v1Config(defaultEnv, []string{"/usr/local/bin/textnet"}, "")}
			for _, p := range goPrograms {
				stage := filepath.Join(dir, "stage-"+p.name)
				if err := b.buildGoProgram(ctx, p.name, filepath.Join(stage, "usr", "local", "bin", p.name), false); err != nil {
					return nil, err
				}
				ls, err := b.treeLayer(ctx, dir, stage, treeFilter{}, normalised,
					fmt.Sprintf("COPY %s /usr/local/bin/%s # go build -trimpath (%s)", p.name, p.name, goToolchain))
				if err != nil {
					return nil, err
				}
				spec.layers = append(spec.layers, ls)
			}
			return spec, nil
		},
	}
}
