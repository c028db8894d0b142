package sensor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fileidKernfs is the kernel's FILEID_KERNFS handle type: a cgroup2 file
// handle is the cgroup's 64-bit id, the value bpf_get_current_cgroup_id
// reports and the directory's inode number on 64-bit kernels.
const fileidKernfs = 0xfe

// CgroupAlive returns a liveness check for cgroup ids on the cgroup2
// hierarchy mounted at root (default as CgroupIDFromFS): it asks the kernel
// to open the cgroup by its id (open_by_handle_at), so no walk of the
// hierarchy is needed and a recycled directory name cannot fool it. A
// removed cgroup answers ESTALE. It needs CAP_DAC_READ_SEARCH, which the
// sensor has as root.
func CgroupAlive(root string) (func(cgroupID uint64) (bool, error), error) {
	if root == "" {
		root = "/sys/fs/cgroup"
		if st, err := os.Stat("/sys/fs/cgroup/unified"); err == nil && st.IsDir() {
			root = "/sys/fs/cgroup/unified"
		}
	}
	mnt, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("cgroup liveness: %w", err)
	}
	return func(id uint64) (bool, error) {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], id)
		fd, err := unix.OpenByHandleAt(int(mnt.Fd()), unix.NewFileHandle(fileidKernfs, b[:]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		switch {
		case err == nil:
			unix.Close(fd)
			return true, nil
		case errors.Is(err, unix.ESTALE), errors.Is(err, unix.ENOENT):
			return false, nil
		default:
			return false, fmt.Errorf("cgroup %d liveness: %w", id, err)
		}
	}, nil
}

// Prune forgets the decisions on containers whose cgroup no longer exists:
// the probe's per-cgroup entry is removed (a cgroup id is never reused, so
// the entry can only be garbage once the cgroup is gone) and so is the
// container's record here, so neither grows with every container the node
// ever ran. Records without a cgroup (containers checked but not selected)
// are dropped too: the selectors are cheap to run again. It returns how
// many decisions were removed from the probe. A liveness error keeps the
// decision (never remove one that may still be in force).
func (p *Prevention) Prune(alive func(cgroupID uint64) (bool, error)) (removed int, err error) {
	if p == nil || alive == nil {
		return 0, nil
	}
	p.mu.Lock()
	ids := make(map[string]uint64, len(p.seen))
	for id, d := range p.seen {
		ids[id] = d.cg
	}
	p.mu.Unlock()
	var errs []error
	for id, cg := range ids {
		if cg == 0 {
			p.forget(id, 0)
			continue
		}
		ok, aerr := alive(cg)
		if aerr != nil {
			errs = append(errs, aerr)
			continue
		}
		if ok {
			continue
		}
		if p.Preventer != nil {
			if perr := p.Preventer.SetPrevention(cg, false); perr != nil {
				errs = append(errs, fmt.Errorf("forget cgroup %d of %s: %w", cg, id, perr))
				continue
			}
		}
		if p.forget(id, cg) {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// forget removes id's record if it still names cgroup cg (a concurrent
// Consider may have replaced it).
func (p *Prevention) forget(id string, cg uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.seen[id]; ok && d.cg == cg {
		delete(p.seen, id)
		return true
	}
	return false
}

// Tracked returns how many containers Prevention holds a record for.
func (p *Prevention) Tracked() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

// pruneLoop runs Prune every interval until ctx ends.
func (p *Prevention) pruneLoop(ctx context.Context, every time.Duration, alive func(uint64) (bool, error), onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.Prune(alive); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}
