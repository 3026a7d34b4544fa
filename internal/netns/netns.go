// Package netns gives a test its own network namespace: only a loopback interface, extra
// addresses on it (QEMU user networking's 10.0.2.2), no route out. Processes are started in it
// with `ip netns exec`; Delete kills every process still inside by PID and removes it.
package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Namespace is a named network namespace (/run/netns/NAME).
type Namespace struct {
	Name string
}

// Create makes the namespace name with lo up and each of addrs (CIDR, e.g. "10.0.2.2/32")
// on lo. It needs root (CAP_SYS_ADMIN) and iproute2.
func Create(ctx context.Context, name string, addrs ...string) (*Namespace, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netns: ip not found (apt-get install iproute2): %w", err)
	}
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("netns: create %s (needs root): %w", name, err)
	}
	n := &Namespace{Name: name}
	steps := [][]string{{"ip", "-n", name, "link", "set", "lo", "up"}}
	for _, a := range addrs {
		steps = append(steps, []string{"ip", "-n", name, "addr", "add", a, "dev", "lo"})
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			_ = n.Delete(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("netns %s: %w", name, err)
		}
	}
	return n, nil
}

// Command returns a command that runs name with args inside the namespace (ip netns exec,
// which also gives it a private mount namespace with the namespace's /sys).
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// PIDs returns the processes running inside the namespace.
func (n *Namespace) PIDs(ctx context.Context) ([]int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", n.Name).Output()
	if err != nil {
		return nil, fmt.Errorf("netns %s: list processes: %w", n.Name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// Interfaces returns the names of the namespace's network interfaces.
func (n *Namespace) Interfaces(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", n.Name, "-o", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("netns %s: list interfaces: %w", n.Name, err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	return names, nil
}

// Delete kills every process left in the namespace (SIGKILL, by PID), waits up to 10 s for
// them to go, and removes the namespace. Safe to call more than once.
func (n *Namespace) Delete(ctx context.Context) error {
	if _, err := os.Stat("/run/netns/" + n.Name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := n.PIDs(ctx)
		if err != nil || len(pids) == 0 {
			break
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns %s: processes %v still running after SIGKILL", n.Name, pids)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := run(ctx, "ip", "netns", "delete", n.Name); err != nil {
		return fmt.Errorf("netns %s: delete: %w", n.Name, err)
	}
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
