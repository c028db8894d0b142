package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// HostID is the container id of processes that run on the host.
const HostID = "host"

// ErrNoCgroup2 means no cgroup v2 hierarchy is mounted: the kernel's cgroup
// ids then mean nothing to attribute.
var ErrNoCgroup2 = errors.New("no cgroup2 hierarchy mounted")

// CgroupResolver maps the cgroup v2 id the kernel reports
// (bpf_get_current_cgroup_id: the inode of the cgroup's directory) to a
// container id parsed from the cgroup's path. Results are cached; a miss
// resolves the id with open_by_handle_at (one syscall) and falls back to a
// walk of the hierarchy. Safe for concurrent use.
type CgroupResolver struct {
	root   string // cgroup2 mount point
	rootID uint64

	mu  sync.RWMutex
	ids map[uint64]string
	cgs map[string]uint64 // container id → cgroup id, for what ids holds
}

const maxCgroupCache = 65536

// CgroupRoot returns the cgroup2 mount point: /sys/fs/cgroup/unified on a
// hybrid host, /sys/fs/cgroup on a unified one.
func CgroupRoot() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", ErrNoCgroup2
}

// NewCgroupResolver returns a resolver for the cgroup2 hierarchy mounted at
// root ("" to find it).
func NewCgroupResolver(root string) (*CgroupResolver, error) {
	if root == "" {
		var err error
		if root, err = CgroupRoot(); err != nil {
			return nil, fmt.Errorf("cgroup resolver: %w", err)
		}
	}
	id, err := CgroupID(root)
	if err != nil {
		return nil, fmt.Errorf("cgroup resolver: %w", err)
	}
	return &CgroupResolver{root: root, rootID: id, ids: map[uint64]string{}, cgs: map[string]uint64{}}, nil
}

// Root is the cgroup2 mount point the resolver reads.
func (r *CgroupResolver) Root() string { return r.root }

// CgroupID returns the cgroup id of the cgroup2 directory at path (its inode).
func CgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", path, err)
	}
	return st.Ino, nil
}

// ContainerID returns the container id of cgroup id, HostID for a cgroup
// that is not a container's (the root, system services, user sessions), and
// "" when the cgroup no longer exists.
func (r *CgroupResolver) ContainerID(id uint64) string {
	if id == r.rootID || id == 1 {
		return HostID
	}
	r.mu.RLock()
	cid, ok := r.ids[id]
	r.mu.RUnlock()
	if ok {
		return cid
	}
	path, err := r.Path(id)
	if err != nil {
		return "" // gone: do not cache, a new cgroup could get the inode
	}
	cid, ok = ParseContainerID(path)
	if !ok {
		cid = HostID
	}
	r.mu.Lock()
	if len(r.ids) >= maxCgroupCache {
		clear(r.ids)
		clear(r.cgs)
	}
	r.ids[id] = cid
	if cid != HostID {
		r.cgs[cid] = id
	}
	r.mu.Unlock()
	return cid
}

// CgroupIDOf returns the cgroup id of a container the resolver has seen an
// event from (the pipeline uses it to put that container in prevention mode
// without walking the hierarchy).
func (r *CgroupResolver) CgroupIDOf(containerID string) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.cgs[containerID]
	return id, ok
}

// Forget drops a cached id (a container removed); optional, the cache is bounded anyway.
func (r *CgroupResolver) Forget(id uint64) {
	r.mu.Lock()
	if cid, ok := r.ids[id]; ok {
		delete(r.cgs, cid)
	}
	delete(r.ids, id)
	r.mu.Unlock()
}

// Path returns the cgroup path (relative to the cgroup2 root, starting with
// "/") of cgroup id.
func (r *CgroupResolver) Path(id uint64) (string, error) {
	if p, err := r.pathByHandle(id); err == nil {
		return p, nil
	}
	return r.pathByWalk(id)
}

// pathByHandle opens the cgroup by its kernfs file handle (the 64-bit id,
// handle type FILEID_KERNFS) and reads the path back from /proc/self/fd.
func (r *CgroupResolver) pathByHandle(id uint64) (string, error) {
	mnt, err := unix.Open(r.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(mnt)
	var h [8]byte
	binary.LittleEndian.PutUint64(h[:], id)
	const fileidKernfs = 0xfe
	fd, err := unix.OpenByHandleAt(mnt, unix.NewFileHandle(fileidKernfs, h[:]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	rel, ok := strings.CutPrefix(p, r.root)
	if !ok {
		return "", fmt.Errorf("cgroup %d: path %s outside %s", id, p, r.root)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

var errFound = errors.New("found")

func (r *CgroupResolver) pathByWalk(id uint64) (string, error) {
	var found string
	err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Ino == id {
			found = p
			return errFound
		}
		return nil
	})
	if found == "" {
		if err != nil && !errors.Is(err, errFound) {
			return "", fmt.Errorf("cgroup %d: %w", id, err)
		}
		return "", fmt.Errorf("cgroup %d: %w", id, fs.ErrNotExist)
	}
	rel := strings.TrimPrefix(found, r.root)
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

// Prefixes and suffixes container runtimes put around the 64-hex container
// id in a cgroup path component:
//
//	containerd (kubelet, cgroupfs) /kubepods/burstable/pod<uid>/<id>
//	containerd (systemd)           .../kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
//	CRI-O                          .../crio-<id>.scope, /kubepods/.../crio-<id>
//	Docker                         /docker/<id>, /system.slice/docker-<id>.scope
//	podman (libpod)                /machine.slice/libpod-<id>.scope[/container]
//	runc (given a cgroupsPath)     /<anything>/<id>
//
// Conmon's own cgroup (libpod-conmon-<id>, crio-conmon-<id>) is the
// runtime's, not the container's.
var idPrefixes = []string{"cri-containerd-", "crio-", "docker-", "libpod-", "containerd-", "runc-"}

// ParseContainerID returns the container id in a cgroup path: the last path
// component that is, or wraps, a 64-hex-digit id.
func ParseContainerID(cgroupPath string) (string, bool) {
	p := cgroupPath
	for p != "" {
		i := strings.LastIndexByte(p, '/')
		c := p[i+1:]
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
		if strings.Contains(c, "conmon") {
			continue
		}
		c = strings.TrimSuffix(c, ".scope")
		for _, pre := range idPrefixes {
			if strings.HasPrefix(c, pre) {
				c = c[len(pre):]
				break
			}
		}
		if isHex64(c) {
			return c, true
		}
	}
	return "", false
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
