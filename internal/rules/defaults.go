package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
)

//go:embed defaults/*.yaml
var defaultFS embed.FS

// DefaultRuleFiles returns Bulwark's shipped rule set (runtime and audit),
// named "defaults/<file>" in messages.
func DefaultRuleFiles() ([]RuleFile, error) {
	names, err := fs.Glob(defaultFS, "defaults/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list default rules: %w", err)
	}
	sort.Strings(names)
	out := make([]RuleFile, 0, len(names))
	for _, n := range names {
		b, err := defaultFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read default rules %s: %w", n, err)
		}
		out = append(out, RuleFile{Name: n, Data: b})
	}
	return out, nil
}
