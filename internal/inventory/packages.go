package inventory

import (
	"cmp"
	"slices"
	"strings"
)

// SortPackages orders packages by name, then version, so that results do
// not depend on map iteration or file order.
func SortPackages(pkgs []Package) {
	slices.SortFunc(pkgs, func(a, b Package) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Version, b.Version))
	})
}

// Dedup collects the packages of one file, keeping one per name@version.
// A package found both as a development (or indirect) dependency and as a
// production (or direct) one is production (direct): Dev and Indirect are
// kept only when every occurrence has them. The zero value is ready to use.
type Dedup struct {
	index map[string]int
	pkgs  []Package
}

// Add records p, or merges it into the package of the same name@version.
func (d *Dedup) Add(p Package) {
	if d.index == nil {
		d.index = make(map[string]int)
	}
	key := p.Name + "@" + p.Version
	if i, ok := d.index[key]; ok {
		q := &d.pkgs[i]
		q.Dev = q.Dev && p.Dev
		q.Indirect = q.Indirect && p.Indirect
		return
	}
	d.index[key] = len(d.pkgs)
	d.pkgs = append(d.pkgs, p)
}

// Sorted returns the packages, ordered as SortPackages orders them.
func (d *Dedup) Sorted() []Package {
	SortPackages(d.pkgs)
	return d.pkgs
}
