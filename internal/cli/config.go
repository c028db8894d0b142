package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// maxConfigSize bounds the YAML configuration file.
const maxConfigSize = 1 << 20

// config is the YAML file flattened to dotted keys ("scan.image.fail-on").
type config struct {
	path   string
	values map[string]string
}

// loadConfig reads a YAML configuration file. Keys are flag names; maps nest
// them under command names. Lists become comma-separated values, as
// repeatable flags accept.
func loadConfig(path string) (*config, error) {
	c := &config{path: path, values: map[string]string{}}
	if path == "" {
		return c, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if st.Size() > maxConfigSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(f)
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return c, nil
	}
	if err := c.flatten("", root.Content[0]); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *config) flatten(prefix string, n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix == "" && k == "exports" {
				continue // a list of objects, read by internal/export (bulwark server)
			}
			if prefix != "" {
				k = prefix + "." + k
			}
			if err := c.flatten(k, n.Content[i+1]); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		vals := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s: lists may only hold plain values", e.Line, prefix)
			}
			vals = append(vals, e.Value)
		}
		c.values[prefix] = strings.Join(vals, ",")
	case yaml.ScalarNode:
		c.values[prefix] = n.Value
	case yaml.AliasNode:
		return fmt.Errorf("line %d: %s: aliases are not allowed in the configuration", n.Line, prefix)
	}
	return nil
}

// lookup finds the most specific value for flag name under command path
// ("scan image"): "scan.image.NAME", then "scan.NAME", then "NAME".
func (c *config) lookup(cmdPath []string, name string) (string, bool) {
	for i := len(cmdPath); i >= 0; i-- {
		key := strings.Join(append(append([]string{}, cmdPath[:i]...), name), ".")
		if v, ok := c.values[key]; ok {
			return v, true
		}
	}
	return "", false
}

// envName is the environment variable for a flag: BULWARK_DB_DIR for --db-dir.
func envName(flag string) string {
	return "BULWARK_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configure fills every flag the user did not set from the environment, then
// from the configuration file, and sets up logging.
func (a *app) configure(cmd *cobra.Command) error {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = a.env.Getenv("BULWARK_CONFIG")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	a.cfg = cfg
	var cmdPath []string
	for c := cmd; c != nil && c.HasParent(); c = c.Parent() {
		cmdPath = append([]string{c.Name()}, cmdPath...)
	}
	var ferr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if ferr != nil || f.Changed || f.Name == "config" || f.Name == "help" || f.Name == "version" {
			return
		}
		src := ""
		v, ok := "", false
		if e := a.env.Getenv(envName(f.Name)); e != "" {
			v, ok, src = e, true, envName(f.Name)
		} else if v, ok = cfg.lookup(cmdPath, f.Name); ok {
			src = cfg.path
		}
		if !ok {
			return
		}
		if err := cmd.Flags().Set(f.Name, v); err != nil {
			ferr = fmt.Errorf("%s: --%s: %w", src, f.Name, err)
		}
	})
	if ferr != nil {
		return ferr
	}
	lvl, _ := cmd.Flags().GetString("log-level")
	var l slog.Level
	if err := l.UnmarshalText([]byte(lvl)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	a.logLvl.Set(l)
	return nil
}
