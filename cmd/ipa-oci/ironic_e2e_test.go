package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// ironicBlock is the text push and inspect print for one architecture: the
// deploy_kernel=/deploy_ramdisk= pair, a baremetal CLI line and an ironic.conf snippet.
func ironicBlock(indent, kernelURL, ramdiskURL, confKernel, confRamdisk string) string {
	lines := []string{
		"Ironic settings:",
		"  deploy_kernel=" + kernelURL,
		"  deploy_ramdisk=" + ramdiskURL,
		"Per node (python-ironicclient):",
		"  baremetal node set NODE --driver-info deploy_kernel=" + kernelURL + " --driver-info deploy_ramdisk=" + ramdiskURL,
		"For every node (ironic.conf):",
		"  [conductor]",
		"  " + confKernel,
		"  " + confRamdisk,
	}
	return indent + strings.Join(lines, "\n"+indent) + "\n"
}

// manifestURLs returns the oci:// URLs of arch's kernel and initramfs manifests, from inspect --json.
func manifestURLs(t *testing.T, host, repo, ref, arch string, extra ...string) (kernel, ramdisk string) {
	t.Helper()
	var in artifact.Inspection
	if err := json.Unmarshal([]byte(mustOK(t, append([]string{"inspect", ref, "--json"}, extra...)...)), &in); err != nil {
		t.Fatal(err)
	}
	for _, p := range in.Platforms {
		if p.Arch != arch {
			continue
		}
		for _, f := range p.Files {
			u := fmt.Sprintf("oci://%s/%s@%s", host, repo, f.Manifest.Digest)
			if f.Component == artifact.Kernel {
				kernel = u
			} else {
				ramdisk = u
			}
		}
	}
	if kernel == "" || ramdisk == "" {
		t.Fatalf("inspect %s: no %s kernel/initramfs", ref, arch)
	}
	return kernel, ramdisk
}

// TestE2EIronicSettings checks what push and inspect print for Ironic: the three forms with
// the manifest digests (not the index digest), on stderr after push or on stdout with
// --ironic, as one JSON log entry with --log-format json, deploy_*_by_arch for arm64, and the
// HTTPS warning after --plain-http; over TLS the CA comes from SSL_CERT_FILE and no warning is
// printed.
func TestE2EIronicSettings(t *testing.T) {
	reg := startRegistry(t)
	repo := "ironic/settings"
	ref := reg.Host + "/" + repo + ":1"
	amd := amd64Files(t, 80, 32<<10, 64<<10)

	r := ipa(t, "push", ref, "--kernel", amd.kernelPath, "--initramfs", amd.initrdPath, "--plain-http")
	if r.code != 0 {
		t.Fatalf("push: exit %d: %s", r.code, r.stderr)
	}
	index := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(index, "sha256:") || strings.Contains(index, "\n") {
		t.Fatalf("push stdout %q, want only the index digest", r.stdout)
	}
	k, rd := manifestURLs(t, reg.Host, repo, ref, "amd64", "--plain-http")
	block := ironicBlock("", k, rd, "deploy_kernel = "+k, "deploy_ramdisk = "+rd)
	// After the "pushed" log line: the block and the warning.
	if want := block + "\n" + ironicPlainHTTPWarning; !strings.HasSuffix(r.stderr, want) || strings.Count(r.stderr, "Ironic settings:") != 1 {
		t.Errorf("push --plain-http stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	if strings.Contains(block, index) {
		t.Errorf("the Ironic settings name the index digest %s, which Ironic refuses", index)
	}

	r = ipa(t, "push", ref, "--kernel", amd.kernelPath, "--initramfs", amd.initrdPath, "--plain-http", "--ironic")
	if want := index + "\n" + block + "\n" + ironicPlainHTTPWarning; r.code != 0 || r.stdout != want || strings.Contains(r.stderr, "deploy_kernel") {
		t.Errorf("push --ironic: exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}

	out := mustOK(t, "inspect", ref, "--plain-http")
	if !strings.Contains(out, ironicBlock("  ", k, rd, "deploy_kernel = "+k, "deploy_ramdisk = "+rd)) {
		t.Errorf("inspect lacks the Ironic settings block:\n%s", out)
	}
	for _, want := range []string{"Ironic reads oci://\nURLs over HTTPS", "2025.1 and 2025.2", "[oci]permit_fallback_to_http_transport = true", "update-ca-certificates"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect --plain-http lacks %q:\n%s", want, out)
		}
	}

	// arm64 merged into the same tag: its ironic.conf form is deploy_*_by_arch.
	arm := writeFiles(t, arm64KernelBytes(81, 32<<10), initramfsBytes(82, 64<<10))
	r = ipa(t, "push", ref, "--kernel", arm.kernelPath, "--initramfs", arm.initrdPath, "--arch", "arm64", "--plain-http", "--ironic")
	ak, ard := manifestURLs(t, reg.Host, repo, ref, "arm64", "--plain-http")
	armBlock := ironicBlock("", ak, ard, "deploy_kernel_by_arch = aarch64:"+ak, "deploy_ramdisk_by_arch = aarch64:"+ard)
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\n"+armBlock+"\n"+ironicPlainHTTPWarning) || strings.Contains(r.stdout, k) {
		t.Errorf("push --arch arm64 --ironic: exit %d\n%s\nwant the arm64 block only:\n%s", r.code, r.stdout, armBlock)
	}

	// JSON logs stay JSON: the settings are one entry.
	r = ipa(t, "--log-format", "json", "push", ref, "--kernel", amd.kernelPath, "--initramfs", amd.initrdPath, "--plain-http")
	var entry map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		if e["msg"] == "Ironic settings" {
			entry = e
		}
	}
	if entry == nil || entry["deploy_kernel"] != k || entry["deploy_ramdisk"] != rd || entry["plain_http"] != true ||
		!strings.HasPrefix(fmt.Sprint(entry["baremetal"]), "baremetal node set NODE --driver-info deploy_kernel="+k) {
		t.Errorf("JSON 'Ironic settings' entry = %v\nstderr:\n%s", entry, r.stderr)
	}

	// Over TLS with a test CA: trusted through SSL_CERT_FILE, no warning.
	ca := testenv.NewCA(t)
	tlsReg := testenv.StartRegistryTLS(t, ca, "")
	tlsRef := tlsReg.Host + "/" + repo + ":1"
	args := []string{"push", tlsRef, "--kernel", amd.kernelPath, "--initramfs", amd.initrdPath}
	if r := ipa(t, args...); r.code == 0 || !strings.Contains(r.stderr, "certificate signed by unknown authority") {
		t.Errorf("push to a registry with an untrusted CA: exit %d, stderr %q", r.code, r.stderr)
	}
	r = ipaEnv(t, []string{"SSL_CERT_FILE=" + ca.CertFile}, args...)
	if r.code != 0 {
		t.Fatalf("push over TLS with SSL_CERT_FILE: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "deploy_kernel=oci://"+tlsReg.Host+"/"+repo+"@sha256:") || strings.Contains(r.stderr, "Warning") {
		t.Errorf("push over TLS stderr:\n%s", r.stderr)
	}
	out = ipaEnv(t, []string{"SSL_CERT_FILE=" + ca.CertFile}, "inspect", tlsRef).stdout
	if !strings.Contains(out, "Ironic settings:") || strings.Contains(out, "Warning") {
		t.Errorf("inspect over TLS:\n%s", out)
	}

	// An OCI layout has no oci:// URL: push prints the digest and nothing for Ironic.
	layout := "oci:" + t.TempDir() + ":1"
	r = ipa(t, "push", layout, "--kernel", amd.kernelPath, "--initramfs", amd.initrdPath, "--ironic")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, "deploy_kernel") {
		t.Errorf("push to an OCI layout: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
