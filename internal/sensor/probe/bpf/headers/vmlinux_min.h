/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A trimmed vmlinux.h: only the kernel types and fields Bulwark's sensor
 * reads, each struct marked preserve_access_index so every access becomes a
 * CO-RE relocation resolved against the running kernel's BTF at load time.
 * Field order and offsets here do not matter; names and types do. The full
 * header (bpftool btf dump file /sys/kernel/btf/vmlinux format c) is ~2.8 MB,
 * too big to commit for the ~40 fields we need.
 */
#ifndef BULWARK_VMLINUX_MIN_H
#define BULWARK_VMLINUX_MIN_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef int pid_t;
typedef _Bool bool;
#define true 1
#define false 0

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct { u32 val; } kuid_t;

struct qstr {
	u32 len;
	const unsigned char *name;
};

struct super_block {
	unsigned long s_magic;
	u32 s_dev;
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
	unsigned int i_nlink;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
};

struct vfsmount {
	struct dentry *mnt_root;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	struct path f_path;
	struct inode *f_inode;
	void *private_data;
};

struct socket {
	short type;
};

struct ovl_inode {
	struct inode vfs_inode;
	struct dentry *__upperdentry;
};

struct linux_binprm {
	struct file *file;
	const char *filename;
};

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
};

struct fs_struct {
	struct path pwd;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct task_struct {
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	char comm[16];
	struct mm_struct *mm;
	struct fs_struct *fs;
	struct files_struct *files;
	kuid_t loginuid;
	int exit_code;
};

struct in6_addr {
	u8 s6_addr[16];
};

struct sock_common {
	u32 skc_rcv_saddr;
	u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
};

#pragma clang attribute pop

/* Classic syscall tracepoint context (tracefs format is stable ABI). */
struct trace_event_raw_sys_enter {
	unsigned short common_type;
	unsigned char common_flags;
	unsigned char common_preempt_count;
	int common_pid;
	long id;
	unsigned long args[6];
};

#endif
