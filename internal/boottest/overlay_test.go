package boottest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/kernelconfig"
)

// TestParseCmdline runs the overlay's ipa_parse_cmdline under BusyBox sh.
func TestParseCmdline(t *testing.T) {
	root, err := kernelconfig.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(root, "buildroot-external/board/ipa/rootfs-overlay/usr/lib/ipa/functions.sh")
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("BOOT_IMAGE=/k console=ttyS0 ipa-api-url=http://192.0.2.1:6385 "+
		"ipa-inspection-callback-url=http://192.0.2.1:5050/v1/continue ipa-debug=1 ipa-insecure "+
		"ipa-global-request-id=req-1 BOOTIF=01-52-54-00-AB-CD-EF ipa-agent-token=it's ipa-bad$key=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `. "$1"; ipa_parse_cmdline "$2" >"$2.env"; . "$2.env"; ` +
		`printf '%s\n' "$ipa_api_url" "$ipa_inspection_callback_url" "$ipa_debug" "$ipa_insecure" ` +
		`"$ipa_global_request_id" "$(ipa_bootif_mac)" "$ipa_agent_token"; ipa_is_true "$ipa_debug" && echo debug`
	out, err := exec.Command("busybox", "sh", "-c", script, "sh", lib, cmdline).CombinedOutput()
	if err != nil {
		t.Fatalf("busybox sh: %v\n%s", err, out)
	}
	want := "http://192.0.2.1:6385\nhttp://192.0.2.1:5050/v1/continue\n1\n1\nreq-1\n52:54:00:ab:cd:ef\nit's\ndebug\n"
	if string(out) != want {
		t.Fatalf("parsed cmdline:\n%s\nwant:\n%s", out, want)
	}
}

// TestShellSyntax checks every shell script this package and the overlay ship with sh -n.
func TestShellSyntax(t *testing.T) {
	root, err := kernelconfig.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, pat := range []string{
		"buildroot-external/board/ipa/rootfs-overlay/etc/init.d/*",
		"buildroot-external/board/ipa/rootfs-overlay/usr/sbin/*",
		"buildroot-external/board/ipa/rootfs-overlay/usr/share/ipa/*",
		"buildroot-external/board/ipa/rootfs-overlay/usr/lib/ipa/*.sh",
		"buildroot-external/board/ipa/*.sh",
		"internal/boottest/testdata/ipa-standin-agent",
		"scripts/*.sh",
	} {
		m, _ := filepath.Glob(filepath.Join(root, pat))
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("only %d scripts found: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sh := "sh"
		if strings.HasPrefix(string(b), "#!/usr/bin/env bash") || strings.HasPrefix(string(b), "#!/bin/bash") {
			sh = "bash"
		} else if fi, _ := os.Stat(f); fi != nil && !strings.HasSuffix(f, ".sh") && fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", f)
		}
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh, f, err, out)
		}
	}
}
