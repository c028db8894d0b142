// SPDX-License-Identifier: GPL-2.0
// Bulwark's node sensor: kernel side. Every program here is a tracepoint
// (classic syscalls:sys_enter_* or tp_btf), the only attach points this
// project can rely on (no kprobes, fentry or BPF LSM; see DESIGN.md).
// Events are small fixed structs written to one ring buffer; noisy calls
// (openat, unlink, chmod) are filtered here so user space only decodes what
// a rule can use.
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define TASK_COMM_LEN 16
#define PATH_MAX_EV 256
#define ARGS_MAX 512
#define LPM_DATA 128
#define ANCESTORS 3
#define CWD_PARTS 8
#define CWD_PART_LEN 32

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define TCP_LISTEN 10
#define AF_INET 2
#define AF_INET6 10
#define SIGKILL 9

#define O_ACCMODE 3
#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_CREAT 0x40
#define O_TRUNC 0x200

#define CLONE_NS_MASK 0x7E020080ULL /* NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME */

/* Event kinds; user space maps them to rules.EventType. Keep in sync with kind.go. */
enum kind {
	K_EXEC = 1,
	K_EXIT,
	K_OPEN,
	K_OPENAT,
	K_OPENAT2,
	K_CONNECT,
	K_LISTEN,
	K_SETUID,
	K_SETGID,
	K_SETRESUID,
	K_SETRESGID,
	K_PTRACE,
	K_UNSHARE,
	K_SETNS,
	K_CLONE,
	K_CLONE3,
	K_INIT_MODULE,
	K_FINIT_MODULE,
	K_CHMOD,
	K_FCHMOD,
	K_FCHMODAT,
	K_UNLINK,
	K_UNLINKAT,
	K_RENAME,
	K_RENAMEAT,
	K_RENAMEAT2,
	K_TRUNCATE,
	K_MEMFD_CREATE,
	K_MAX,
};

/* Header flags. */
#define F_PREVENTED 0x1
#define F_UPPER 0x2
#define F_MEMFD 0x4
#define F_ARGS_TRUNC 0x8
#define F_PATH_TRUNC 0x10
#define F_NAME_ONLY 0x20
#define F_OVERLAY 0x40
#define F_CWD_TRUNC 0x80

/* Path filter operations (value of the prefix/suffix LPM tries). */
#define OP_READ 0x1
#define OP_WRITE 0x2
#define OP_REMOVE 0x4

struct event_hdr {
	u64 ts;        /* CLOCK_BOOTTIME ns */
	u64 cgroup_id; /* cgroup v2 id of the task */
	u16 kind;
	u16 flags;
	u32 pid;       /* tgid */
	u32 tid;
	u32 ppid;
	u32 uid;
	u32 gid;
	u32 loginuid;
	u32 _pad;
	char comm[TASK_COMM_LEN];
}; /* 64 bytes */

struct exec_event {
	struct event_hdr h;
	u64 ino;
	u32 dev;
	u16 filename_len;
	u16 args_len;
	char ancestors[ANCESTORS][TASK_COMM_LEN];
	char filename[PATH_MAX_EV];
	char args[ARGS_MAX];
	/* cwd as path components, leaf first, each NUL-terminated */
	char cwd[CWD_PARTS][CWD_PART_LEN];
}; /* 1152 bytes */

struct small_event {
	struct event_hdr h;
	u64 a[4];
}; /* 96 bytes */

struct path_event {
	struct event_hdr h;
	u64 a[4];
	u16 path_len;
	u16 _pad[3];
	char path[PATH_MAX_EV];
}; /* 360 bytes */

struct lpm_key {
	u32 prefixlen;
	u8 data[LPM_DATA];
};

struct config {
	u32 prevent_all;  /* kill drift in every container */
	u32 skip_host;    /* drop events whose cgroup id == host_cgroup */
	u64 host_cgroup;
	u32 self_tgid;    /* the sensor itself: never reported */
	u32 wakeup_bytes; /* wake the reader only when this much is pending (0: every sample) */
	u32 prevent_unknown; /* kill upper-layer drift in cgroups with no decision yet */
	u32 suffix_max;      /* longest path_suffix entry, bytes: only that much is reversed */
};

struct scratch {
	struct lpm_key fwd;
	struct lpm_key rev;
};

/* Force BTF for the types user space decodes (bpf2go -type). */
const struct event_hdr *unused_hdr __attribute__((unused));
const struct exec_event *unused_exec __attribute__((unused));
const struct small_event *unused_small __attribute__((unused));
const struct path_event *unused_path __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Ring buffer reservations that failed, per CPU and event kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, K_MAX);
	__type(key, u32);
	__type(value, u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct config);
} config_map SEC(".maps");

/* Drift-prevention decisions by cgroup id: PREVENT_ON or PREVENT_ALLOW. The
 * nearest decision wins, looking at the task's cgroup and then its
 * ancestors: a pod's cgroup exists before its containers do, so a decision
 * on it covers their very first exec. */
#define PREVENT_ON 1
#define PREVENT_ALLOW 2
#define PREVENT_LEVELS 16
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, u8);
} prevent_cgroups SEC(".maps");

/* Path prefixes to report (value: OP_* mask). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, u32);
} path_prefix SEC(".maps");

/* Path suffixes, stored reversed ("/authorized_keys" -> "syek_dezirohtua/"). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, u32);
} path_suffix SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

static __always_inline struct config *get_config(void)
{
	u32 zero = 0;
	return bpf_map_lookup_elem(&config_map, &zero);
}

/* wake_flag batches reader wakeups: a wakeup per sample costs the reader a
 * context switch per event, which is most of the sensor's overhead on an
 * exec-heavy node. Below the threshold the reader finds samples on its next
 * poll (Config.PollInterval). */
static __always_inline u64 wake_flag(void)
{
	struct config *c = get_config();
	if (!c || !c->wakeup_bytes)
		return 0;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= c->wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void count_lost(u32 kind)
{
	u64 *n = bpf_map_lookup_elem(&lost, &kind);
	if (n)
		*n += 1;
}

/* should_prevent decides whether a drifted exec (upper layer or memfd) in
 * cgroup cgid is killed. Only drifted execs get here, so the ancestor walk
 * costs nothing on ordinary execs. */
static __always_inline bool should_prevent(u64 cgid, bool upper)
{
	u8 *v = bpf_map_lookup_elem(&prevent_cgroups, &cgid);
	if (v)
		return *v == PREVENT_ON;
	u8 decision = 0;
	for (int l = 1; l < PREVENT_LEVELS; l++) {
		u64 id = bpf_get_current_ancestor_cgroup_id(l);
		if (!id || id == cgid)
			break;
		v = bpf_map_lookup_elem(&prevent_cgroups, &id);
		if (v)
			decision = *v; /* deeper ancestors override */
	}
	if (decision)
		return decision == PREVENT_ON;
	struct config *c = get_config();
	if (!c)
		return false;
	if (c->prevent_all)
		return true;
	/* Fail closed for containers user space has not attributed yet (their
	 * first execs): only binaries from an overlay upper layer, which host
	 * software does not run from, and never in the host's root cgroup. */
	return c->prevent_unknown && upper && cgid != c->host_cgroup;
}

/* skip reports whether the current task's events are not wanted. */
static __always_inline bool skip(u64 cgid)
{
	struct config *c = get_config();
	if (!c)
		return false;
	if (c->self_tgid && (u32)(bpf_get_current_pid_tgid() >> 32) == c->self_tgid)
		return true;
	if (c->skip_host && cgid == c->host_cgroup)
		return true;
	return false;
}

/* fill_hdr reads the task through its BTF pointer: direct loads, not one
 * bpf_probe_read_kernel call per field (the helper calls were most of the
 * exit program's time). */
static __always_inline void fill_hdr(struct event_hdr *h, u16 kind, u64 cgid)
{
	struct task_struct *t = bpf_get_current_task_btf();
	u64 pt = bpf_get_current_pid_tgid();
	u64 ug = bpf_get_current_uid_gid();
	h->ts = bpf_ktime_get_boot_ns();
	h->cgroup_id = cgid;
	h->kind = kind;
	h->flags = 0;
	h->pid = pt >> 32;
	h->tid = (u32)pt;
	h->ppid = t->real_parent->tgid;
	h->uid = (u32)ug;
	h->gid = ug >> 32;
	h->loginuid = (u32)-1;
	if (bpf_core_field_exists(t->loginuid))
		h->loginuid = t->loginuid.val;
	h->_pad = 0;
	bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

static __always_inline struct file *fd_file(long fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (fd < 0 || fd >= max)
		return 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* match_path reads a user path and returns the OP_* mask of the prefix and
 * suffix entries it matches. */
static __always_inline u32 match_path(const char *upath)
{
	u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 0;
	long n = bpf_probe_read_user_str(s->fwd.data, LPM_DATA, upath);
	if (n <= 1)
		return 0;
	u32 len = (u32)(n - 1) & (LPM_DATA - 1);
	if (n - 1 >= LPM_DATA)
		len = LPM_DATA - 1;
	u32 ops = 0;
	s->fwd.prefixlen = len * 8;
	u32 *v = bpf_map_lookup_elem(&path_prefix, &s->fwd);
	if (v)
		ops |= *v;
	/* A suffix of at most suffix_max bytes only needs the path's last
	 * suffix_max bytes reversed (this byte loop was most of the cost of
	 * every open). */
	struct config *c = get_config();
	u32 smax = c ? c->suffix_max : LPM_DATA - 1;
	if (smax > len)
		smax = len;
	for (u32 i = 0; i < LPM_DATA - 1; i++) {
		if (i >= smax)
			break;
		s->rev.data[i & (LPM_DATA - 1)] = s->fwd.data[(len - 1 - i) & (LPM_DATA - 1)];
	}
	s->rev.prefixlen = smax * 8;
	if (smax) {
		v = bpf_map_lookup_elem(&path_suffix, &s->rev);
		if (v)
			ops |= *v;
	}
	return ops;
}

static __always_inline int emit_path(u16 kind, const char *upath, u64 a0, u64 a1, u64 a2, u64 cgid)
{
	struct path_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(kind);
		return 0;
	}
	fill_hdr(&e->h, kind, cgid);
	e->a[0] = a0;
	e->a[1] = a1;
	e->a[2] = a2;
	e->a[3] = 0;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	long n = bpf_probe_read_user_str(e->path, sizeof(e->path), upath);
	if (n < 1)
		n = 1, e->path[0] = 0;
	if (n >= PATH_MAX_EV)
		e->h.flags |= F_PATH_TRUNC;
	e->path_len = n - 1;
	bpf_ringbuf_submit(e, wake_flag());
	return 0;
}

/* emit_fd_name reports an fd-based call with the file's dentry name. */
static __always_inline int emit_fd_name(u16 kind, long fd, u64 a0, u64 a1, u64 cgid)
{
	struct path_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(kind);
		return 0;
	}
	fill_hdr(&e->h, kind, cgid);
	e->h.flags |= F_NAME_ONLY;
	e->a[0] = a0;
	e->a[1] = a1;
	e->a[2] = fd;
	e->a[3] = 0;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	e->path[0] = 0;
	long n = 0;
	struct file *f = fd_file(fd);
	if (f) {
		const unsigned char *name = BPF_CORE_READ(f, f_path.dentry, d_name.name);
		n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), name);
	}
	if (n < 1)
		n = 1, e->path[0] = 0;
	e->path_len = n - 1;
	bpf_ringbuf_submit(e, wake_flag());
	return 0;
}

static __always_inline int emit_small(u16 kind, u64 a0, u64 a1, u64 a2, u64 a3, u64 cgid)
{
	struct small_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(kind);
		return 0;
	}
	fill_hdr(&e->h, kind, cgid);
	e->a[0] = a0;
	e->a[1] = a1;
	e->a[2] = a2;
	e->a[3] = a3;
	bpf_ringbuf_submit(e, wake_flag());
	return 0;
}

/* ---- exec, exit ---- */

/* read_cwd writes the cwd's components leaf first; an empty component ends
 * the list (only that one is cleared, not the whole array). */
static __always_inline void read_cwd(struct exec_event *e, struct task_struct *p)
{
	struct fs_struct *fs = p->fs;
	struct dentry *d = fs->pwd.dentry;
	struct dentry *root = fs->pwd.mnt->mnt_root;
	int i;
	for (i = 0; i < CWD_PARTS; i++) {
		if (!d || d == root)
			break;
		struct dentry *parent = d->d_parent;
		if (parent == d)
			break;
		bpf_probe_read_kernel_str(e->cwd[i], CWD_PART_LEN, d->d_name.name);
		d = parent;
	}
	if (i < CWD_PARTS) {
		e->cwd[i & (CWD_PARTS - 1)][0] = 0;
		return;
	}
	if (d && d != root && d->d_parent != d)
		e->h.flags |= F_CWD_TRUNC;
}

/* The exec and exit programs read through BTF pointers (the tracepoint's
 * typed arguments): plain loads the verifier checks, with no helper call per
 * field. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	u64 cgid = bpf_get_current_cgroup_id();
	u16 flags = 0;
	struct file *f = bprm->file;
	struct inode *ino = f->f_inode;
	struct super_block *sb = ino->i_sb;
	if (sb->s_magic == OVERLAYFS_SUPER_MAGIC) {
		flags |= F_OVERLAY;
		struct ovl_inode *oi = (void *)ino - bpf_core_field_offset(struct ovl_inode, vfs_inode);
		if (BPF_CORE_READ(oi, __upperdentry))
			flags |= F_UPPER;
	}
	char pfx[8] = {};
	bpf_probe_read_kernel_str(pfx, sizeof(pfx), f->f_path.dentry->d_name.name);
	if (pfx[0] == 'm' && pfx[1] == 'e' && pfx[2] == 'm' && pfx[3] == 'f' && pfx[4] == 'd' && pfx[5] == ':')
		flags |= F_MEMFD;

	/* Prevention is decided before anything can fail: a full ring buffer
	 * must not let drift run. */
	if (flags & (F_UPPER | F_MEMFD)) {
		if (should_prevent(cgid, flags & F_UPPER)) {
			bpf_send_signal(SIGKILL);
			flags |= F_PREVENTED;
		}
	}
	if (!(flags & F_PREVENTED) && skip(cgid))
		return 0;

	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(K_EXEC);
		return 0;
	}
	fill_hdr(&e->h, K_EXEC, cgid);
	e->h.flags = flags;
	e->ino = ino->i_ino;
	e->dev = sb->s_dev;

	struct task_struct *a = p->real_parent;
	for (int i = 0; i < ANCESTORS; i++) {
		e->ancestors[i][0] = 0;
		if (!a)
			continue;
		bpf_probe_read_kernel(e->ancestors[i], TASK_COMM_LEN, a->comm);
		a = a->real_parent;
	}

	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), bprm->filename);
	if (n < 1)
		n = 1, e->filename[0] = 0;
	e->filename_len = n - 1;

	struct mm_struct *mm = p->mm;
	unsigned long start = mm->arg_start;
	unsigned long end = mm->arg_end;
	unsigned long len = end - start;
	if (end <= start)
		len = 0;
	if (len > ARGS_MAX) {
		len = ARGS_MAX;
		e->h.flags |= F_ARGS_TRUNC;
	}
	e->args_len = 0;
	if (len > 0 && bpf_probe_read_user(e->args, len, (void *)start) == 0)
		e->args_len = len;
	read_cwd(e, p);
	bpf_ringbuf_submit(e, wake_flag());
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	if (p->pid != p->tgid)
		return 0; /* a thread, not the process */
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_small(K_EXIT, p->exit_code, 0, 0, 0, cgid);
}

/* ---- sockets ---- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (newstate != TCP_LISTEN)
		return 0;
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
	u64 addr[2] = {};
	if (family == AF_INET)
		addr[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	else if (family == AF_INET6)
		BPF_CORE_READ_INTO(&addr, sk, __sk_common.skc_v6_rcv_saddr);
	else
		return 0;
	return emit_small(K_LISTEN, family | (1ULL << 16) | ((u64)port << 32), 0, addr[0], addr[1], cgid);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int on_connect(struct trace_event_raw_sys_enter *ctx)
{
	u64 cgid = bpf_get_current_cgroup_id();
	const void *uaddr = (const void *)ctx->args[1];
	u16 family = 0;
	if (bpf_probe_read_user(&family, sizeof(family), uaddr))
		return 0;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (skip(cgid))
		return 0;
	u16 nport = 0;
	bpf_probe_read_user(&nport, sizeof(nport), uaddr + 2);
	u64 addr[2] = {};
	if (family == AF_INET)
		bpf_probe_read_user(&addr[0], 4, uaddr + 4);
	else
		bpf_probe_read_user(&addr, 16, uaddr + 8);
	u64 socktype = 0;
	struct file *f = fd_file(ctx->args[0]);
	if (f) {
		struct socket *so = BPF_CORE_READ(f, private_data);
		socktype = (u16)BPF_CORE_READ(so, type);
	}
	u16 port = (nport >> 8) | (nport << 8);
	return emit_small(K_CONNECT, family | (socktype << 16) | ((u64)port << 32), ctx->args[0], addr[0], addr[1], cgid);
}

/* ---- files ---- */

static __always_inline int do_open(u16 kind, const char *upath, u64 flags, u64 mode)
{
	u32 want = 0;
	if (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC))
		want |= OP_WRITE;
	if ((flags & O_ACCMODE) == O_RDONLY || (flags & O_ACCMODE) == O_RDWR)
		want |= OP_READ;
	if (!(match_path(upath) & want))
		return 0;
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_path(kind, upath, flags, mode, 0, cgid);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat(struct trace_event_raw_sys_enter *ctx)
{
	return do_open(K_OPENAT, (const char *)ctx->args[1], ctx->args[2], ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_open")
int on_open(struct trace_event_raw_sys_enter *ctx)
{
	return do_open(K_OPEN, (const char *)ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int on_openat2(struct trace_event_raw_sys_enter *ctx)
{
	u64 flags = 0;
	u64 mode = 0;
	bpf_probe_read_user(&flags, sizeof(flags), (void *)ctx->args[2]);
	bpf_probe_read_user(&mode, sizeof(mode), (void *)ctx->args[2] + 8);
	return do_open(K_OPENAT2, (const char *)ctx->args[1], flags, mode);
}

static __always_inline int do_remove(u16 kind, const char *upath, u64 a0)
{
	if (!(match_path(upath) & OP_REMOVE))
		return 0;
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_path(kind, upath, a0, 0, 0, cgid);
}

SEC("tracepoint/syscalls/sys_enter_unlink")
int on_unlink(struct trace_event_raw_sys_enter *ctx) { return do_remove(K_UNLINK, (const char *)ctx->args[0], 0); }

SEC("tracepoint/syscalls/sys_enter_unlinkat")
int on_unlinkat(struct trace_event_raw_sys_enter *ctx) { return do_remove(K_UNLINKAT, (const char *)ctx->args[1], ctx->args[2]); }

SEC("tracepoint/syscalls/sys_enter_rename")
int on_rename(struct trace_event_raw_sys_enter *ctx) { return do_remove(K_RENAME, (const char *)ctx->args[0], 0); }

SEC("tracepoint/syscalls/sys_enter_renameat")
int on_renameat(struct trace_event_raw_sys_enter *ctx) { return do_remove(K_RENAMEAT, (const char *)ctx->args[1], 0); }

SEC("tracepoint/syscalls/sys_enter_renameat2")
int on_renameat2(struct trace_event_raw_sys_enter *ctx) { return do_remove(K_RENAMEAT2, (const char *)ctx->args[1], ctx->args[4]); }

SEC("tracepoint/syscalls/sys_enter_truncate")
int on_truncate(struct trace_event_raw_sys_enter *ctx) { return do_remove(K_TRUNCATE, (const char *)ctx->args[0], ctx->args[1]); }

/* chmod family: only modes that grant execute are reported. */
static __always_inline int do_chmod(u16 kind, const char *upath, u64 mode)
{
	if (!(mode & 0111))
		return 0;
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_path(kind, upath, mode, 0, 0, cgid);
}

SEC("tracepoint/syscalls/sys_enter_chmod")
int on_chmod(struct trace_event_raw_sys_enter *ctx) { return do_chmod(K_CHMOD, (const char *)ctx->args[0], ctx->args[1]); }

SEC("tracepoint/syscalls/sys_enter_fchmodat")
int on_fchmodat(struct trace_event_raw_sys_enter *ctx) { return do_chmod(K_FCHMODAT, (const char *)ctx->args[1], ctx->args[2]); }

SEC("tracepoint/syscalls/sys_enter_fchmodat2")
int on_fchmodat2(struct trace_event_raw_sys_enter *ctx) { return do_chmod(K_FCHMODAT, (const char *)ctx->args[1], ctx->args[2]); }

SEC("tracepoint/syscalls/sys_enter_fchmod")
int on_fchmod(struct trace_event_raw_sys_enter *ctx)
{
	u64 mode = ctx->args[1];
	if (!(mode & 0111))
		return 0;
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_fd_name(K_FCHMOD, ctx->args[0], mode, 0, cgid);
}

SEC("tracepoint/syscalls/sys_enter_memfd_create")
int on_memfd_create(struct trace_event_raw_sys_enter *ctx)
{
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_path(K_MEMFD_CREATE, (const char *)ctx->args[0], ctx->args[1], 0, 0, cgid);
}

/* ---- privileges, namespaces, modules, ptrace ---- */

static __always_inline int do_small(u16 kind, u64 a0, u64 a1, u64 a2, u64 a3)
{
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_small(kind, a0, a1, a2, a3, cgid);
}

SEC("tracepoint/syscalls/sys_enter_setuid")
int on_setuid(struct trace_event_raw_sys_enter *ctx) { return do_small(K_SETUID, ctx->args[0], 0, 0, 0); }

SEC("tracepoint/syscalls/sys_enter_setgid")
int on_setgid(struct trace_event_raw_sys_enter *ctx) { return do_small(K_SETGID, ctx->args[0], 0, 0, 0); }

SEC("tracepoint/syscalls/sys_enter_setresuid")
int on_setresuid(struct trace_event_raw_sys_enter *ctx) { return do_small(K_SETRESUID, ctx->args[0], ctx->args[1], ctx->args[2], 0); }

SEC("tracepoint/syscalls/sys_enter_setresgid")
int on_setresgid(struct trace_event_raw_sys_enter *ctx) { return do_small(K_SETRESGID, ctx->args[0], ctx->args[1], ctx->args[2], 0); }

SEC("tracepoint/syscalls/sys_enter_ptrace")
int on_ptrace(struct trace_event_raw_sys_enter *ctx) { return do_small(K_PTRACE, ctx->args[0], ctx->args[1], 0, 0); }

SEC("tracepoint/syscalls/sys_enter_unshare")
int on_unshare(struct trace_event_raw_sys_enter *ctx) { return do_small(K_UNSHARE, ctx->args[0], 0, 0, 0); }

SEC("tracepoint/syscalls/sys_enter_setns")
int on_setns(struct trace_event_raw_sys_enter *ctx) { return do_small(K_SETNS, ctx->args[1], ctx->args[0], 0, 0); }

SEC("tracepoint/syscalls/sys_enter_clone")
int on_clone(struct trace_event_raw_sys_enter *ctx)
{
	u64 flags = ctx->args[0];
	if (!(flags & CLONE_NS_MASK))
		return 0; /* plain fork/thread: not reported */
	return do_small(K_CLONE, flags, 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_clone3")
int on_clone3(struct trace_event_raw_sys_enter *ctx)
{
	u64 flags = 0;
	bpf_probe_read_user(&flags, sizeof(flags), (void *)ctx->args[0]);
	if (!(flags & CLONE_NS_MASK))
		return 0;
	return do_small(K_CLONE3, flags, 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_init_module")
int on_init_module(struct trace_event_raw_sys_enter *ctx)
{
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	/* The module's name is inside the image; report its parameters string. */
	return emit_path(K_INIT_MODULE, (const char *)ctx->args[2], ctx->args[1], 0, 0, cgid);
}

SEC("tracepoint/syscalls/sys_enter_finit_module")
int on_finit_module(struct trace_event_raw_sys_enter *ctx)
{
	u64 cgid = bpf_get_current_cgroup_id();
	if (skip(cgid))
		return 0;
	return emit_fd_name(K_FINIT_MODULE, ctx->args[0], ctx->args[2], 0, cgid);
}
