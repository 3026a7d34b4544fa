package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const e2eRepo = "ipa/ironic-python-agent"

// TestE2EPushPull walks the PXE host's life: two architectures pushed into one tag, pulled into
// one directory, re-checked, pinned, given an iPXE script and a hook, updated, rolled back and
// audited. The subtests run in order and share the registry and directories.
func TestE2EPushPull(t *testing.T) {
	reg := startRegistry(t)
	ref := reg.Host + "/" + e2eRepo + ":2025.1"
	amd := amd64Files(t, 1, 64<<10, 256<<10)
	arm := writeFiles(t, arm64KernelBytes(2, 48<<10), initramfsBytes(3, 200<<10))
	buildInfo := filepath.Join("testdata", "build-info.json")
	wantBuildInfo, err := os.ReadFile(buildInfo)
	if err != nil {
		t.Fatal(err)
	}

	dAmd := push(t, ref, amd, "--ipa-version", "10.1.0", "--build-info", buildInfo)
	dIdx := push(t, ref, arm, "--arch", "arm64", "--ipa-version", "10.1.0", "--build-info", buildInfo, "--tag", "stable")
	if dAmd == dIdx {
		t.Fatalf("pushing arm64 into the tag did not change its index (%s)", dIdx)
	}
	dir := filepath.Join(t.TempDir(), "tftpboot", "ipa")

	t.Run("tags", func(t *testing.T) {
		for tag, want := range map[string]string{"2025.1": dIdx, "stable": dIdx} {
			if got := headManifest(t, reg.Host, e2eRepo, tag); got != want {
				t.Errorf("tag %s resolves to %q, want %s", tag, got, want)
			}
		}
		for _, arch := range []string{"amd64", "arm64"} {
			var idx ocispec.Index
			getManifest(t, reg.Host, e2eRepo, "10.1.0-"+arch, &idx)
			if len(idx.Manifests) != 2 {
				t.Fatalf("per-arch tag 10.1.0-%s lists %d manifests, want 2 (kernel, initramfs)", arch, len(idx.Manifests))
			}
			for _, m := range idx.Manifests {
				if m.Platform == nil || m.Platform.Architecture != arch || m.Platform.OS != "linux" {
					t.Errorf("10.1.0-%s lists %+v", arch, m.Platform)
				}
			}
		}
		var idx ocispec.Index
		getManifest(t, reg.Host, e2eRepo, dIdx, &idx)
		var got []string
		for _, m := range idx.Manifests {
			got = append(got, m.Platform.Architecture+"/"+m.Annotations[artifact.AnnotationComponent]+"/"+m.ArtifactType)
		}
		want := []string{
			"amd64/kernel/" + artifact.ArtifactTypeKernel, "amd64/initramfs/" + artifact.ArtifactTypeInitramfs,
			"arm64/kernel/" + artifact.ArtifactTypeKernel, "arm64/initramfs/" + artifact.ArtifactTypeInitramfs,
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("index entries:\n got %v\nwant %v", got, want)
		}
		if idx.Annotations[ocispec.AnnotationVersion] != "10.1.0" {
			t.Errorf("index annotations %v: want version 10.1.0", idx.Annotations)
		}
	})

	t.Run("pull both architectures", func(t *testing.T) {
		if out := mustOK(t, "pull", ref, "--dest", dir, "--plain-http"); out != "updated amd64 "+dIdx+"\n" {
			t.Errorf("pull amd64 stdout %q", out)
		}
		if out := mustOK(t, "pull", ref, "--dest", dir, "--arch", "arm64", "--plain-http"); out != "updated arm64 "+dIdx+"\n" {
			t.Errorf("pull arm64 stdout %q", out)
		}
		assertServes(t, dir, amd)
		for name, want := range map[string][]byte{"ironic-python-agent_aarch64.kernel": arm.kernel, "ironic-python-agent_aarch64.initramfs": arm.initramfs} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || sha256hex(got) != sha256hex(want) {
				t.Errorf("%s: %v, sha256 %.12s want %.12s", name, err, sha256hex(got), sha256hex(want))
			}
		}
		// The served names are symlinks into the architecture's current version.
		for name, arch := range map[string]string{
			"ironic-python-agent.kernel": "amd64", "ironic-python-agent.initramfs": "amd64",
			"ironic-python-agent_aarch64.kernel": "arm64", "ironic-python-agent_aarch64.initramfs": "arm64",
		} {
			if tgt, err := os.Readlink(filepath.Join(dir, name)); err != nil || tgt != filepath.Join(".ipa-oci", arch, "current", name) {
				t.Errorf("%s -> %q (%v), want .ipa-oci/%s/current/%s", name, tgt, err, arch, name)
			}
		}
		out := sha256sumCheck(t, dir)
		want := "ironic-python-agent.initramfs: OK\nironic-python-agent.kernel: OK\n" +
			"ironic-python-agent_aarch64.initramfs: OK\nironic-python-agent_aarch64.kernel: OK\n"
		if got := sortLines(out); got != want {
			t.Errorf("sha256sum -c SHA256SUMS:\n%s\nwant:\n%s", got, want)
		}
	})

	// What inspect says is the registry's truth the other checks compare with.
	var in artifact.Inspection
	t.Run("inspect", func(t *testing.T) {
		out := mustOK(t, "inspect", ref, "--json", "--plain-http")
		if err := json.Unmarshal([]byte(out), &in); err != nil {
			t.Fatalf("inspect --json: %v\n%s", err, out)
		}
		if in.Index.Digest.String() != dIdx || len(in.Platforms) != 2 {
			t.Fatalf("inspect: index %s with %d platforms, want %s with 2", in.Index.Digest, len(in.Platforms), dIdx)
		}
		var idx ocispec.Index
		getManifest(t, reg.Host, e2eRepo, dIdx, &idx)
		manifestOf := map[string]string{}
		for _, m := range idx.Manifests {
			manifestOf[m.Platform.Architecture+"/"+m.Annotations[artifact.AnnotationComponent]] = m.Digest.String()
		}
		for _, p := range in.Platforms {
			for key, comp := range map[string]string{"deploy_kernel": "kernel", "deploy_ramdisk": "initramfs"} {
				want := fmt.Sprintf("oci://%s/%s@%s", reg.Host, e2eRepo, manifestOf[p.Arch+"/"+comp])
				if p.Ironic[key] != want {
					t.Errorf("%s %s = %q, want %q", p.Arch, key, p.Ironic[key], want)
				}
				// Ironic takes the manifest by digest: it must be a single-layer artifact.
				var m ocispec.Manifest
				getManifest(t, reg.Host, e2eRepo, manifestOf[p.Arch+"/"+comp], &m)
				if len(m.Layers) != 1 || m.Config.MediaType != ocispec.MediaTypeEmptyJSON || m.ArtifactType == "" {
					t.Errorf("%s %s manifest: %d layers, config %s, artifactType %q", p.Arch, comp, len(m.Layers), m.Config.MediaType, m.ArtifactType)
				}
			}
		}
		infos := map[string]bool{}
		for _, r := range in.Referrers {
			if r.ArtifactType == artifact.ArtifactTypeBuildInfo {
				infos[r.Annotations[artifact.AnnotationArch]] = true
				var m ocispec.Manifest
				getManifest(t, reg.Host, e2eRepo, r.Digest.String(), &m)
				if m.Subject == nil || m.Subject.Digest.String() != dIdx || len(m.Layers) != 1 {
					t.Errorf("build-info referrer %s: subject %v, %d layers", r.Digest, m.Subject, len(m.Layers))
				} else if m.Layers[0].Digest.Encoded() != sha256hex(wantBuildInfo) {
					t.Errorf("build-info referrer %s layer %s, want the sha256 of testdata/build-info.json", r.Digest, m.Layers[0].Digest)
				}
			}
		}
		if !infos["amd64"] || !infos["arm64"] {
			t.Errorf("build-info referrers by arch: %v, want amd64 and arm64 (referrers %+v)", infos, in.Referrers)
		}
		// The text form carries the same ready-to-paste settings.
		text := mustOK(t, "inspect", ref, "--plain-http")
		for _, p := range in.Platforms {
			for _, v := range p.Ironic {
				if !strings.Contains(text, v) {
					t.Errorf("inspect text lacks %s:\n%s", v, text)
				}
			}
		}
	})

	t.Run("ipa-oci.json", func(t *testing.T) {
		s := readSummaryFile(t, dir)
		if s.SchemaVersion != 1 || len(s.Artifacts) != 2 {
			t.Fatalf("ipa-oci.json: schema %d, %d artifacts, want 1 and 2", s.SchemaVersion, len(s.Artifacts))
		}
		want := map[string]files{"amd64": amd, "arm64": arm}
		for _, rec := range s.Artifacts {
			if rec.Ref != ref || rec.IndexDigest.String() != dIdx || rec.IPAVersion != "10.1.0" || rec.PulledAt.IsZero() {
				t.Errorf("%s record: ref %q index %s version %q pulled %v", rec.Arch, rec.Ref, rec.IndexDigest, rec.IPAVersion, rec.PulledAt)
			}
			var p artifact.PlatformFiles
			for _, q := range in.Platforms {
				if q.Arch == rec.Arch {
					p = q
				}
			}
			if fmt.Sprint(rec.Ironic) != fmt.Sprint(p.Ironic) {
				t.Errorf("%s record ironic %v, inspect says %v", rec.Arch, rec.Ironic, p.Ironic)
			}
			if len(rec.Files) != 2 {
				t.Fatalf("%s record has %d files", rec.Arch, len(rec.Files))
			}
			for i, f := range rec.Files {
				data := map[string][]byte{"kernel": want[rec.Arch].kernel, "initramfs": want[rec.Arch].initramfs}[f.Component]
				if f.Name != artifact.FileName(artifact.Component(f.Component), rec.Arch) || f.Digest.Encoded() != sha256hex(data) ||
					f.Size != int64(len(data)) || f.ManifestDigest != p.Files[i].Manifest.Digest ||
					f.MediaType != artifact.Component(f.Component).ArtifactType() {
					t.Errorf("%s record file %+v; want %d bytes sha256:%.12s manifest %s", rec.Arch, f, len(data), sha256hex(data), p.Files[i].Manifest.Digest)
				}
			}
		}
	})

	t.Run("re-pull is up to date, one manifest request, rewrites nothing", func(t *testing.T) {
		proxy := startProxy(t, reg.Host)
		before := snapshot(t, dir)
		proxy.requests()
		out := mustOK(t, "pull", proxy.Addr+"/"+e2eRepo+":2025.1", "--dest", dir, "--plain-http")
		if out != "up to date amd64 "+dIdx+"\n" {
			t.Errorf("stdout %q, want %q", out, "up to date amd64 "+dIdx+"\n")
		}
		assertUntouched(t, dir, before, nil)
		reqs, _ := proxy.requests()
		var manifests, blobs int
		for _, r := range reqs {
			manifests += strings.Count(r, "/manifests/")
			blobs += strings.Count(r, "/blobs/")
		}
		if manifests != 1 || blobs != 0 {
			t.Errorf("requests %q: %d manifest and %d blob requests, want 1 and 0", reqs, manifests, blobs)
		}
	})

	t.Run("push with SOURCE_DATE_EPOCH is reproducible", func(t *testing.T) {
		env := []string{"SOURCE_DATE_EPOCH=1700000000"}
		args := []string{"--kernel", amd.kernelPath, "--initramfs", amd.initrdPath, "--ipa-version", "10.1.0", "--plain-http"}
		var got []string
		for _, tag := range []string{"repro", "repro", "repro-again"} {
			r := ipaEnv(t, env, append([]string{"push", reg.Host + "/ipa/repro:" + tag}, args...)...)
			if r.code != 0 {
				t.Fatalf("push: exit %d: %s", r.code, r.stderr)
			}
			got = append(got, strings.TrimSpace(r.stdout))
		}
		if got[0] != got[1] || got[0] != got[2] {
			t.Errorf("same files pushed three times gave %v", got)
		}
		var idx ocispec.Index
		getManifest(t, reg.Host, "ipa/repro", got[0], &idx)
		if c := idx.Annotations[ocispec.AnnotationCreated]; c != "2023-11-14T22:13:20Z" {
			t.Errorf("created annotation %q, want 2023-11-14T22:13:20Z (SOURCE_DATE_EPOCH)", c)
		}
	})

	t.Run("pin refuses another digest", func(t *testing.T) {
		before := snapshot(t, dir)
		other := "sha256:" + strings.Repeat("ab", 32)
		r := ipa(t, "pull", ref, "--dest", dir, "--pin", other, "--plain-http")
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: pull %s: it resolves to %s but the pin is %s; refusing (update --pin to accept it)", ref, dIdx, other))
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
		assertUntouched(t, dir, before, nil)
		if out := mustOK(t, "pull", ref, "--dest", dir, "--pin", dIdx, "--plain-http"); out != "up to date amd64 "+dIdx+"\n" {
			t.Errorf("pull --pin %s: %q", dIdx, out)
		}
		r = ipa(t, "pull", ref, "--dest", dir, "--pin", "sha256:nope", "--plain-http")
		wantFailure(t, r, 1, `ipa-oci: pull: --pin "sha256:nope": want sha256:<64 hex digits>`)
		assertUntouched(t, dir, before, nil)
	})

	t.Run("ipxe", func(t *testing.T) {
		mustOK(t, "pull", ref, "--dest", dir, "--ipxe", "--kernel-arg", "ipa-api-url=http://192.0.2.10:6385",
			"--kernel-arg", "ipa-insecure=1", "--plain-http")
		got, err := os.ReadFile(filepath.Join(dir, "boot.ipxe"))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("#!ipxe\n# Written by ipa-oci pull: %s (index %s, IPA 10.1.0)\n"+
			"kernel ironic-python-agent.kernel initrd=ironic-python-agent.initramfs ipa-api-url=http://192.0.2.10:6385 ipa-insecure=1\n"+
			"initrd ironic-python-agent.initramfs\nboot\n", ref, dIdx)
		if string(got) != want {
			t.Errorf("boot.ipxe:\n%s\nwant:\n%s", got, want)
		}
		if tgt, _ := os.Readlink(filepath.Join(dir, "boot.ipxe")); tgt != filepath.Join(".ipa-oci", "amd64", "current", "boot.ipxe") {
			t.Errorf("boot.ipxe -> %q, want the current version's", tgt)
		}
		mustOK(t, "pull", ref, "--dest", dir, "--arch", "arm64", "--ipxe", "--kernel-arg", "ipa-api-url=http://192.0.2.10:6385", "--plain-http")
		got, err = os.ReadFile(filepath.Join(dir, "boot_aarch64.ipxe"))
		if err != nil || !strings.Contains(string(got), "kernel ironic-python-agent_aarch64.kernel initrd=ironic-python-agent_aarch64.initramfs ipa-api-url=http://192.0.2.10:6385\ninitrd ironic-python-agent_aarch64.initramfs\n") {
			t.Errorf("boot_aarch64.ipxe: %v\n%s", err, got)
		}
		// The same arguments again: nothing rewritten.
		before := snapshot(t, dir)
		mustOK(t, "pull", ref, "--dest", dir, "--ipxe", "--kernel-arg", "ipa-api-url=http://192.0.2.10:6385",
			"--kernel-arg", "ipa-insecure=1", "--plain-http")
		assertUntouched(t, dir, before, nil)
	})

	// A second host that audits its files.
	audit := filepath.Join(t.TempDir(), "audit")
	mustOK(t, "pull", ref, "--dest", audit, "--plain-http")

	// A third directory with an update hook.
	hooked := filepath.Join(t.TempDir(), "hooked")
	marker := filepath.Join(t.TempDir(), "updates.log")
	hook := `echo "$IPA_OCI_ARCH $IPA_OCI_INDEX_DIGEST $IPA_OCI_VERSION $(basename "$IPA_OCI_DEST")" >>` + marker
	t.Run("exec runs on a real update only", func(t *testing.T) {
		mustOK(t, "pull", ref, "--dest", hooked, "--exec", hook, "--plain-http")
		mustOK(t, "pull", ref, "--dest", hooked, "--exec", hook, "--plain-http")
		if got, _ := os.ReadFile(marker); string(got) != "amd64 "+dIdx+" 10.1.0 hooked\n" {
			t.Errorf("hook log after two pulls of one index:\n%s", got)
		}
		r := ipa(t, "pull", ref, "--dest", filepath.Join(t.TempDir(), "failing-hook"), "--exec", "echo hook broke >&2; exit 3", "--plain-http", "--log-level", "error")
		wantFailure(t, r, 1, fmt.Sprintf(`ipa-oci: pull %s: files updated, but the update hook "echo hook broke >&2; exit 3" failed: exit status 3: hook broke`, ref))
	})

	t.Run("verify OK, then a tampered file", func(t *testing.T) {
		if out := mustOK(t, "verify", audit); out != "OK "+audit+"\n" {
			t.Errorf("verify stdout %q", out)
		}
		name := "ironic-python-agent.initramfs"
		real, err := filepath.EvalSymlinks(filepath.Join(audit, name))
		if err != nil {
			t.Fatal(err)
		}
		tampered := append([]byte{}, amd.initramfs...)
		tampered[len(tampered)/2] ^= 0xff
		if err := os.WriteFile(real, tampered, 0o644); err != nil {
			t.Fatal(err)
		}
		r := ipa(t, "verify", audit)
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: verify %s: 1 mismatch(es)", audit))
		if want := fmt.Sprintf("MISMATCH %s: digest sha256:%s, recorded sha256:%s\n", name, sha256hex(tampered), sha256hex(amd.initramfs)); r.stdout != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
		}
		if err := os.WriteFile(real, tampered[:1000], 0o644); err != nil {
			t.Fatal(err)
		}
		r = ipa(t, "verify", audit)
		if want := fmt.Sprintf("MISMATCH %s: size 1000, recorded %d\n", name, len(amd.initramfs)); r.code != 1 || r.stdout != want {
			t.Errorf("truncated file: exit %d stdout %q, want 1 and %q", r.code, r.stdout, want)
		}
		r = ipa(t, "verify", t.TempDir())
		if r.code != 2 || !strings.Contains(r.stderr, "no ipa-oci.json (was it filled by ipa-oci pull?)") {
			t.Errorf("verify of an empty directory: exit %d, %s", r.code, r.stderr)
		}
	})

	// Version 2 of the amd64 files moves the tag.
	amd2 := amd64Files(t, 11, 64<<10, 300<<10)
	dIdx2 := push(t, ref, amd2, "--ipa-version", "10.2.0")

	t.Run("verify --against a tag that moved", func(t *testing.T) {
		s := readSummaryFile(t, dir)
		r := ipa(t, "verify", dir, "--against", ref, "--plain-http")
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: verify %s: 2 mismatch(es)", dir))
		want := fmt.Sprintf("MISMATCH ironic-python-agent.kernel: registry has sha256:%s, file recorded as sha256:%s\n"+
			"MISMATCH ironic-python-agent.initramfs: registry has sha256:%s, file recorded as sha256:%s\n",
			sha256hex(amd2.kernel), sha256hex(amd.kernel), sha256hex(amd2.initramfs), sha256hex(amd.initramfs))
		if r.stdout != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
		}
		if fmt.Sprint(readSummaryFile(t, dir)) != fmt.Sprint(s) {
			t.Errorf("verify changed ipa-oci.json")
		}
		// Against the index it was pulled from, by digest: clean.
		if out := mustOK(t, "verify", dir, "--against", reg.Host+"/"+e2eRepo+"@"+dIdx, "--plain-http"); out != "OK "+dir+"\n" {
			t.Errorf("verify --against @%s: %q", dIdx, out)
		}
	})

	t.Run("update, exec, rollback", func(t *testing.T) {
		out := mustOK(t, "pull", ref, "--dest", hooked, "--exec", hook, "--plain-http")
		if out != "updated amd64 "+dIdx2+"\n" {
			t.Errorf("pull v2: %q", out)
		}
		assertServes(t, hooked, amd2)
		if got, _ := os.ReadFile(marker); string(got) != "amd64 "+dIdx+" 10.1.0 hooked\namd64 "+dIdx2+" 10.2.0 hooked\n" {
			t.Errorf("hook log after the update:\n%s", got)
		}
		sha256sumCheck(t, hooked)
		out = mustOK(t, "rollback", "--dest", hooked)
		if out != "rolled back amd64 "+dIdx+"\n" {
			t.Errorf("rollback stdout %q", out)
		}
		assertServes(t, hooked, amd)
		sha256sumCheck(t, hooked)
		if s := readSummaryFile(t, hooked); len(s.Artifacts) != 1 || s.Artifacts[0].IndexDigest.String() != dIdx {
			t.Errorf("ipa-oci.json after rollback: %+v", s.Artifacts)
		}
		if out := mustOK(t, "verify", hooked); out != "OK "+hooked+"\n" {
			t.Errorf("verify after rollback: %q", out)
		}
		// Rolling back again goes forward to the version rolled back from.
		if out := mustOK(t, "rollback", "--dest", hooked); out != "rolled back amd64 "+dIdx2+"\n" {
			t.Errorf("second rollback: %q", out)
		}
		assertServes(t, hooked, amd2)
		// Back again, then a pull of the tag: it goes forward to what the tag names, from the
		// files DIR still has (no blob requests).
		mustOK(t, "rollback", "--dest", hooked)
		assertServes(t, hooked, amd)
		proxy := startProxy(t, reg.Host)
		if out := mustOK(t, "pull", proxy.Addr+"/"+e2eRepo+":2025.1", "--dest", hooked, "--plain-http"); out != "updated amd64 "+dIdx2+"\n" {
			t.Errorf("pull after rollback: %q", out)
		}
		assertServes(t, hooked, amd2)
		reqs, _ := proxy.requests()
		for _, r := range reqs {
			if strings.Contains(r, "/blobs/") {
				t.Errorf("pull after rollback downloaded %s; the files were in DIR", r)
			}
		}
		sha256sumCheck(t, hooked)
		// A directory with a single version has nothing to roll back to.
		before := snapshot(t, audit)
		r := ipa(t, "rollback", "--dest", audit)
		wantFailure(t, r, 1, fmt.Sprintf("ipa-oci: rollback %s: no previous amd64 version kept; nothing to roll back to", audit))
		assertUntouched(t, audit, before, nil)
	})
}

func sortLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}
