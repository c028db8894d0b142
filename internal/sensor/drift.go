package sensor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
)

// Preventer switches drift prevention for one cgroup: the probe kills, at
// exec, any executable that was not in the image. *probe.Probe implements it.
type Preventer interface {
	SetPrevention(cgroupID uint64, on bool) error
}

// Selector picks containers for drift prevention. Every set field must
// match (globs: '*' any characters including '/', '?' one character): "namespace=prod", "image=registry.example.com/app*",
// "namespace=prod,image=*nginx*", "container=3f9a*" (container id), "pod=web-*".
type Selector struct {
	Namespace, Image, Pod, Container string
}

// ParseSelector reads one --drift-prevent value.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	if strings.TrimSpace(s) == "" {
		return sel, fmt.Errorf("drift-prevent selector: empty")
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return sel, fmt.Errorf("drift-prevent selector %q: want key=glob with key namespace, image, pod or container", s)
		}
		switch k {
		case "namespace", "ns":
			sel.Namespace = v
		case "image":
			sel.Image = v
		case "pod":
			sel.Pod = v
		case "container":
			sel.Container = v
		default:
			return sel, fmt.Errorf("drift-prevent selector %q: unknown key %q (namespace, image, pod, container)", s, k)
		}
	}
	return sel, nil
}

// glob matches v against pattern where '*' matches any run of characters
// ('/' included: image references are paths) and '?' any one character.
// An empty pattern matches everything.
func glob(pattern, v string) bool {
	if pattern == "" {
		return true
	}
	p, s := 0, 0
	star, mark := -1, 0
	for s < len(v) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == v[s]):
			p++
			s++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, s
			p++
		case star >= 0:
			p = star + 1
			mark++
			s = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Matches reports whether a container (its id and what enrichment knows) is selected.
func (s Selector) Matches(id string, info *enrich.Info) bool {
	var i enrich.Info
	if info != nil {
		i = *info
	}
	return glob(s.Container, id) && glob(s.Namespace, i.Namespace) && glob(s.Image, i.Image) && glob(s.Pod, i.Pod)
}

// Allower is a Preventer that can exempt one cgroup from prevention
// (*probe.Probe's AllowDrift): needed when the probe prevents drift in every
// container not yet decided (Prevention.Unknown).
type Allower interface {
	AllowDrift(cgroupID uint64, on bool) error
}

// Prevention applies the --drift-prevent selectors: when a container is
// attributed (enrichment's OnAttributed, or its first event when it has no
// pod) and a selector matches, its cgroup is put in prevention mode.
//
// With Unknown set, the probe itself kills drift in every container no
// decision covers yet (probe.Config.PreventUnknown), so a selected
// container is protected from its very first exec, before user space has
// seen it; Prevention then settles each container: SetPrevention for a
// selected one, AllowDrift for one no selector matches. A container that
// is first seen without names (no runtime state, pod not yet known) is
// released at once and switched back on if its later attribution matches;
// the runtime-state resolver names CRI containers on their first event.
type Prevention struct {
	Selectors []Selector
	Preventer Preventer
	Unknown   bool
	// CgroupID finds a container's cgroup id (default CgroupIDFromFS over
	// the cgroup2 hierarchy).
	CgroupID func(containerID string) (uint64, error)
	OnError  func(containerID string, err error)
	OnEnable func(containerID string, cgroupID uint64)
	OnAllow  func(containerID string, cgroupID uint64) // Unknown mode: a container released
	// Alive, when set, tells whether a cgroup still exists (CgroupAlive);
	// the sensor then prunes the decisions of exited containers every
	// PruneEvery (default 1 minute) — see Prune.
	Alive      func(cgroupID uint64) (bool, error)
	PruneEvery time.Duration

	mu   sync.Mutex
	seen map[string]decision
}

type decision struct {
	cg                 uint64
	prevented, allowed bool
}

// Enabled reports whether prevention is on for the container.
func (p *Prevention) Enabled(id string) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[id].prevented
}

// Consider evaluates the selectors for a container once per (id, attribution)
// and switches prevention on when one matches (or, in Unknown mode,
// releases the container when none does).
func (p *Prevention) Consider(id string, info *enrich.Info) {
	if p == nil || len(p.Selectors) == 0 || id == "" || id == "host" {
		return
	}
	p.mu.Lock()
	if p.seen == nil {
		p.seen = map[string]decision{}
	}
	d, ok := p.seen[id]
	if ok && (d.prevented || info == nil) {
		p.mu.Unlock()
		return
	}
	p.seen[id] = d // checked (a concurrent Consider without names returns)
	p.mu.Unlock()
	match := false
	for _, s := range p.Selectors {
		if s.Matches(id, info) {
			match = true
			break
		}
	}
	if p.Preventer == nil {
		return
	}
	find := p.CgroupID
	if find == nil {
		find = CgroupIDFromFS("")
	}
	if !match {
		al, ok := p.Preventer.(Allower)
		if !p.Unknown || d.allowed || !ok {
			return
		}
		cg, err := find(id)
		if err == nil {
			err = al.AllowDrift(cg, true)
		}
		if err != nil {
			if p.OnError != nil {
				p.OnError(id, fmt.Errorf("release from prevention: %w", err))
			}
			return
		}
		p.mu.Lock()
		p.seen[id] = decision{cg: cg, allowed: true}
		p.mu.Unlock()
		if p.OnAllow != nil {
			p.OnAllow(id, cg)
		}
		return
	}
	cg, err := find(id)
	if err == nil {
		err = p.Preventer.SetPrevention(cg, true)
	}
	if err != nil {
		if p.OnError != nil {
			p.OnError(id, err)
		}
		return
	}
	p.mu.Lock()
	p.seen[id] = decision{cg: cg, prevented: true}
	p.mu.Unlock()
	if p.OnEnable != nil {
		p.OnEnable(id, cg)
	}
}

// ErrNoCgroup: no cgroup directory names the container.
var ErrNoCgroup = errors.New("no cgroup found for container")

// CgroupIDFromFS returns a finder that walks the cgroup2 hierarchy under root
// (default /sys/fs/cgroup/unified when it exists — hybrid hosts — else
// /sys/fs/cgroup) for a directory whose name contains the container id; its
// inode number is the cgroup id bpf_get_current_cgroup_id reports. The walk
// is bounded in depth and done once per selected container.
func CgroupIDFromFS(root string) func(string) (uint64, error) {
	return func(id string) (uint64, error) {
		r := root
		if r == "" {
			r = "/sys/fs/cgroup"
			if st, err := os.Stat("/sys/fs/cgroup/unified"); err == nil && st.IsDir() {
				r = "/sys/fs/cgroup/unified"
			}
		}
		if len(id) < 12 {
			return 0, fmt.Errorf("cgroup of %q: container id too short", id)
		}
		var found uint64
		err := filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(p[len(r):], "/") > 8 {
				return fs.SkipDir
			}
			if strings.Contains(d.Name(), id) {
				fi, err := d.Info()
				if err != nil {
					return nil
				}
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					found = st.Ino
					return fs.SkipAll
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("cgroup of %s: %w", id, err)
		}
		if found == 0 {
			return 0, fmt.Errorf("cgroup of %s: %w under %s", id, ErrNoCgroup, r)
		}
		return found, nil
	}
}
