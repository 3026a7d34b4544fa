package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Errorf("%s:%d: section [%s] twice", path, n, section)
			}
			u[section] = map[string][]string{}
		case section == "":
			t.Errorf("%s:%d: %q outside a section", path, n, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(k) == "" || strings.HasSuffix(line, "\\") {
				t.Errorf("%s:%d: %q is not KEY=VALUE on one line", path, n, line)
				continue
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

const unitDest = "/srv/tftpboot/ipa"

// TestE2ESystemdUnits checks scripts/ipa-oci-pull.{service,timer}: their settings, that
// systemd-analyze verifies them cleanly and rates the sandbox, that the service's command line
// works against a real registry, and that its system call filter admits every call it makes.
func TestE2ESystemdUnits(t *testing.T) {
	root := testenv.RepoRoot(t)
	svcPath := filepath.Join(root, "scripts", "ipa-oci-pull.service")
	timerPath := filepath.Join(root, "scripts", "ipa-oci-pull.timer")
	svc, timer := parseUnit(t, svcPath), parseUnit(t, timerPath)

	t.Run("settings", func(t *testing.T) {
		for _, c := range []struct {
			unit               unitFile
			section, key, want string
		}{
			{svc, "Service", "Type", "oneshot"},
			{svc, "Service", "EnvironmentFile", "/etc/default/ipa-oci-pull"},
			{svc, "Service", "ProtectSystem", "strict"},
			{svc, "Service", "ReadWritePaths", unitDest},
			{svc, "Service", "NoNewPrivileges", "yes"},
			{svc, "Service", "PrivateTmp", "yes"},
			{svc, "Unit", "After", "network-online.target"},
			{svc, "Unit", "Wants", "network-online.target"},
			{timer, "Timer", "OnUnitInactiveSec", "5min"},
			{timer, "Timer", "RandomizedDelaySec", "1min"},
			{timer, "Timer", "Unit", "ipa-oci-pull.service"},
			{timer, "Install", "WantedBy", "timers.target"},
		} {
			if got := c.unit.get(c.section, c.key); got != c.want {
				t.Errorf("[%s] %s=%q, want %q", c.section, c.key, got, c.want)
			}
		}
		exec := svc.get("Service", "ExecStart")
		for _, want := range []string{"/usr/local/bin/ipa-oci pull ${IPA_OCI_REF} ", "--dest " + unitDest + " ", "--ipxe", "$IPA_OCI_PULL_ARGS"} {
			if !strings.Contains(exec, want) {
				t.Errorf("ExecStart=%s lacks %q", exec, want)
			}
		}
		if strings.Contains(exec, "--interval") {
			t.Errorf("ExecStart=%s: a oneshot started by a timer must not loop", exec)
		}
		if len(svc["Install"]) != 0 {
			t.Errorf("the service has an [Install] section; the timer starts it")
		}
	})

	// Copies of the units whose ExecStart runs the binary under test, for systemd-analyze
	// (it checks that the command exists) and for running the command line.
	dir := t.TempDir()
	for _, p := range []string{svcPath, timerPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/ipa-oci", ipaOCI))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	analyze := func(t *testing.T, args ...string) string {
		t.Helper()
		bin, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Fatalf("systemd-analyze not found: install the systemd package (scripts/setup-test-env.sh PKGS)")
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		if out := analyze(t, "verify", "./ipa-oci-pull.service", "./ipa-oci-pull.timer"); out != "" {
			t.Errorf("systemd-analyze verify has complaints:\n%s", out)
		}
	})

	t.Run("systemd-analyze security", func(t *testing.T) {
		out := analyze(t, "security", "--offline=yes", "--threshold=25", "--no-pager", "./ipa-oci-pull.service")
		m := regexp.MustCompile(`Overall exposure level for ipa-oci-pull.service: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		t.Logf("systemd-analyze security: exposure %s (threshold 2.5)", m[1])
	})

	// The service's command line, as systemd would expand it, against a real registry.
	reg := startRegistry(t)
	ref := reg.Host + "/" + e2eRepo + ":unit"
	f := amd64Files(t, 100, 16<<10, 64<<10)
	d := push(t, ref, f)
	dest := filepath.Join(t.TempDir(), "tftpboot", "ipa")
	env := map[string]string{
		"IPA_OCI_REF":       ref,
		"IPA_OCI_PULL_ARGS": "--plain-http --kernel-arg ipa-api-url=http://192.0.2.10:6385 --kernel-arg ipa-insecure=1",
	}
	argv := expandExecStart(t, svc.get("Service", "ExecStart"), env)
	for i, a := range argv {
		if a == unitDest {
			argv[i] = dest
		}
	}

	t.Run("command line works", func(t *testing.T) {
		out := mustOK(t, argv[1:]...)
		if out != "updated amd64 "+d+"\n" {
			t.Errorf("stdout %q", out)
		}
		assertServes(t, dest, f)
		b, err := os.ReadFile(filepath.Join(dest, "boot.ipxe"))
		if err != nil || !strings.Contains(string(b), " ipa-api-url=http://192.0.2.10:6385 ipa-insecure=1\n") {
			t.Errorf("boot.ipxe: %v\n%s", err, b)
		}
	})

	t.Run("system call filter admits every call", func(t *testing.T) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			t.Fatalf("strace not found: install the strace package (scripts/setup-test-env.sh PKGS)")
		}
		allowed := map[string]bool{}
		for _, v := range svc["Service"]["SystemCallFilter"] {
			deny := strings.HasPrefix(v, "~")
			for _, group := range strings.Fields(strings.TrimPrefix(v, "~")) {
				for _, call := range syscallGroup(t, group) {
					allowed[call] = !deny
				}
			}
		}
		if len(allowed) == 0 {
			t.Fatal("the service has no SystemCallFilter")
		}
		// A fresh pull and an up-to-date re-check, both traced.
		trace := filepath.Join(t.TempDir(), "strace")
		fresh := filepath.Join(t.TempDir(), "ipa")
		used := map[string]bool{}
		for i := 0; i < 2; i++ {
			args := append([]string{"-f", "-qq", "-o", trace, "--", ipaOCI}, argv[1:]...)
			for j, a := range args {
				if a == dest {
					args[j] = fresh
				}
			}
			if out, err := exec.Command(strace, args...).CombinedOutput(); err != nil {
				t.Fatalf("strace ipa-oci pull: %v\n%s", err, out)
			}
			b, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`(?m)^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]`).FindAllStringSubmatch(string(b), -1) {
				used[m[1]] = true
			}
		}
		var denied []string
		for call := range used {
			if !allowed[call] {
				denied = append(denied, call)
			}
		}
		sort.Strings(denied)
		if len(denied) > 0 {
			t.Errorf("ipa-oci pull makes system calls the unit's SystemCallFilter denies: %v", denied)
		}
		if len(used) < 20 {
			t.Errorf("only %d system calls traced; is the strace parsing broken?", len(used))
		}
	})
}

// expandExecStart splits an ExecStart= line the way systemd does for this unit: ${VAR} is one
// word, $VAR is split on white space.
func expandExecStart(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	var out []string
	for _, w := range strings.Fields(line) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			v, ok := env[w[2:len(w)-1]]
			if !ok {
				t.Fatalf("ExecStart uses %s; the test does not know it", w)
			}
			out = append(out, v)
		case strings.HasPrefix(w, "$"):
			v, ok := env[w[1:]]
			if !ok {
				t.Fatalf("ExecStart uses %s; the test does not know it", w)
			}
			out = append(out, strings.Fields(v)...)
		default:
			out = append(out, w)
		}
	}
	return out
}

// syscallGroup expands a system call group (@name, recursively) or returns a single call.
func syscallGroup(t *testing.T, name string) []string {
	t.Helper()
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager", name).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
	}
	var calls []string
	for _, l := range strings.Split(string(out), "\n")[1:] {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "@"):
			calls = append(calls, syscallGroup(t, l)...)
		default:
			calls = append(calls, l)
		}
	}
	if len(calls) == 0 {
		t.Fatalf("system call group %s is empty", name)
	}
	return calls
}
