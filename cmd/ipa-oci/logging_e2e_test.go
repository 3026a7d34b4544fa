package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ELogging checks --log-format json (one JSON object per line with structured fields, for
// CI) and that bad --log-level/--log-format values fail with one line naming the flag.
func TestE2ELogging(t *testing.T) {
	reg := startRegistry(t)
	ref := reg.Host + "/" + e2eRepo + ":logs"
	f := amd64Files(t, 40, 32<<10, 64<<10)
	r := ipa(t, "--log-format", "json", "--log-level", "debug", "push", ref, "--kernel", f.kernelPath, "--initramfs", f.initrdPath)
	if r.code != 0 {
		t.Fatalf("push: exit %d: %s", r.code, r.stderr)
	}
	var sawPushed bool
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("stderr line is not JSON: %q (%v)", line, err)
		}
		if entry["level"] == nil || entry["msg"] == nil || entry["time"] == nil {
			t.Fatalf("log entry lacks level/msg/time: %v", entry)
		}
		if entry["msg"] == "pushed" {
			sawPushed = entry["ref"] == ref && entry["arch"] == "amd64" && strings.HasPrefix(entry["index"].(string), "sha256:")
		}
	}
	if !sawPushed {
		t.Fatalf("no 'pushed' entry with ref, arch and index fields in:\n%s", r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "d")
	r = ipa(t, "--log-format", "json", "pull", ref, "--dest", dir)
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"updated"`) || !strings.Contains(r.stderr, `"dest":"`+dir+`"`) {
		t.Fatalf("pull json logs: exit %d\n%s", r.code, r.stderr)
	}

	wantFailure(t, ipa(t, "--log-level", "loud", "inspect", ref), 1, `ipa-oci: --log-level "loud": use debug, info, warn or error`)
	wantFailure(t, ipa(t, "--log-format", "xml", "inspect", ref), 1, `ipa-oci: --log-format "xml": use text or json`)
}

// TestE2EArgumentErrors checks that a missing or extra argument fails with one line naming
// what is expected, exit 1.
func TestE2EArgumentErrors(t *testing.T) {
	ref := "the reference HOST[:PORT]/REPO:TAG, HOST/REPO@sha256:... or oci:DIR:TAG"
	wantFailure(t, ipa(t, "pull"), 1, "ipa-oci: pull: expects one argument, "+ref+" (got 0); see 'ipa-oci pull --help'")
	wantFailure(t, ipa(t, "inspect", "a", "b"), 1, "ipa-oci: inspect: expects one argument, "+ref+" (got 2); see 'ipa-oci inspect --help'")
	wantFailure(t, ipa(t, "verify"), 1, "ipa-oci: verify: expects one argument, the pull destination DIR (got 0); see 'ipa-oci verify --help'")
	wantFailure(t, ipa(t, "pull", "registry.example.com/ipa:1"), 1, "ipa-oci: pull: --dest DIR is required")
	wantFailure(t, ipa(t, "push", "registry.example.com/ipa:1"), 1, "ipa-oci: push: --kernel and --initramfs are required")
	wantFailure(t, ipa(t, "pull", "x/y:z", "--dest", t.TempDir()), 1,
		`ipa-oci: reference "x/y:z": name the registry host, as in registry.example.com/ipa/ironic-python-agent:2024.2`)
}
