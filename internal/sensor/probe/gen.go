package probe

// The BPF objects are generated and committed (sensor_bpfel.go, sensor_bpfel.o)
// so building Bulwark needs neither clang nor cgo. To regenerate after editing
// bpf/sensor.bpf.c (Debian: apt-get install clang llvm libbpf-dev):
//
//	go generate ./internal/sensor/probe
//
// The C code uses a trimmed, CO-RE-relocated vmlinux header
// (bpf/headers/vmlinux_min.h), so the object loads on any kernel with BTF.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -target bpfel -type event_hdr -type exec_event -type small_event -type path_event -type config -type lpm_key sensor bpf/sensor.bpf.c -- -O2 -g -Wall -Werror -I./bpf/headers -I/usr/include/x86_64-linux-gnu
