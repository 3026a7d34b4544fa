package main

// End-to-end tests of `ipa-oci lock` and of builds from the lock: the real binary, the real
// builder image, a PEP 503 index of real wheels built by the test (internal/lockfixture) and
// bare git repositories standing in for ironic-python-agent and openstack/requirements. The
// build runs builder/testdata/buildroot-standin (NOT Buildroot), which downloads, hash-checks
// and installs the wheel list the way the real package does.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/internal/lockfixture"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// lockProject is a project directory: ipa-oci.yaml (no builder.id: the lock pins the image),
// an external tree with the real post-build.sh, the lock inputs, and a download cache holding
// the stand-in's own source.
type lockProject struct {
	dir, cfg, lock, ext string
	in                  *lockfixture.Inputs
}

func newLockProject(t *testing.T) *lockProject {
	t.Helper()
	root := testenv.RepoRoot(t)
	e2eBuilderImage(t)
	dir := t.TempDir()
	p := &lockProject{dir: dir, cfg: filepath.Join(dir, "ipa-oci.yaml"), lock: filepath.Join(dir, builder.LockFileName), ext: filepath.Join(dir, "buildroot-external")}
	p.in = lockfixture.NewInputs(t, filepath.Join(dir, "git"))
	lockfixture.WritePackageMk(t, p.ext)

	// The real post-build script, wired as the real defconfig wires it.
	realExt := filepath.Join(root, "buildroot-external")
	writeFile(t, filepath.Join(p.ext, "board", "ipa", "post-build.sh"), string(mustReadFile(t, filepath.Join(realExt, "board", "ipa", "post-build.sh"))))
	os.Chmod(filepath.Join(p.ext, "board", "ipa", "post-build.sh"), 0o755)
	checkTools := mustReadFile(t, filepath.Join(realExt, "board", "ipa", "check-tools.sh"))
	writeFile(t, filepath.Join(p.ext, "board", "ipa", "check-tools.sh"), string(checkTools))
	os.Chmod(filepath.Join(p.ext, "board", "ipa", "check-tools.sh"), 0o755)
	_, toolList, _ := strings.Cut(string(checkTools), "\nTOOLS=\"")
	toolList, _, _ = strings.Cut(toolList, "\"")
	if len(strings.Fields(toolList)) < 30 {
		t.Fatalf("TOOLS list of check-tools.sh not found (got %q)", toolList)
	}
	var wiring []string
	for _, l := range strings.Split(string(mustReadFile(t, filepath.Join(realExt, "configs", "ipa_x86_64_defconfig"))), "\n") {
		if strings.HasPrefix(l, "BR2_ROOTFS_POST_BUILD_SCRIPT=") || strings.HasPrefix(l, "BR2_ROOTFS_POST_SCRIPT_ARGS=") {
			wiring = append(wiring, l)
		}
	}
	if len(wiring) != 2 {
		t.Fatalf("the real defconfig's post-build wiring: %q", wiring)
	}
	src := []byte("stand-in source\n")
	writeFile(t, filepath.Join(dir, "dl", "standin", "src.tar"), string(src))
	// Kconfig defaults of the real Config.in; ipa-oci overrides them on make's command line.
	writeFile(t, filepath.Join(p.ext, "configs", "e2e_defconfig"), fmt.Sprintf(`STANDIN_SOURCE_URL="http://127.0.0.1:9/src.tar"
STANDIN_SOURCE_SHA256=%q
BR2_IPA_GIT_URL="https://opendev.org/openstack/ironic-python-agent.git"
BR2_IPA_GIT_REF="12.0.0"
BR2_IPA_REQUIREMENTS_GIT_URL="https://opendev.org/openstack/requirements.git"
BR2_IPA_REQUIREMENTS_GIT_REF="stable/2026.1"
%s
`, sha256Hex(src), strings.Join(wiring, "\n")))
	// The stand-in builds no agent: empty placeholders stand for the programs post-build.sh
	// checks for (check-tools.sh's own list).
	for _, tool := range append(strings.Fields(toolList), "ironic-python-agent") {
		pth := filepath.Join(p.ext, "rootfs-overlay", "usr", "bin", tool)
		writeFile(t, pth, "")
		os.Chmod(pth, 0o755)
	}
	p.writeConfig(t, "master", "master")
	return p
}

func (p *lockProject) writeConfig(t *testing.T, ipaRef, reqRef string) {
	t.Helper()
	writeFile(t, p.cfg, fmt.Sprintf(`buildroot:
  src: %s
external: buildroot-external
defconfig: e2e
ipa:
  repo: %s
  ref: %s
requirements:
  repo: %s
  ref: %s
pythonIndex: %s
builder:
  image: %s
dlDir: dl
ccacheDir: ccache
# The shared test engine has no bridge network; the index is on the host's loopback.
hostNetwork: true
`, filepath.Join(testenv.RepoRoot(t), "builder", "testdata", "buildroot-standin"), p.in.IPA.URL, ipaRef,
		p.in.Requirements.URL, reqRef, p.in.Index.URL, e2eBuilderTag(t)))
}

// lastLine is the last line of stderr, where the binary prints its error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// wantOneLineError checks exit status 1 and that the error is exactly the last stderr line,
// "ipa-oci: " then a message containing each of wants.
func wantOneLineError(t *testing.T, what string, r result, wants ...string) {
	t.Helper()
	last := lastLine(r.stderr)
	t.Logf("%s: %s", what, last)
	ok := r.code == 1 && strings.HasPrefix(last, "ipa-oci: ")
	for _, w := range wants {
		ok = ok && strings.Contains(last, w)
	}
	// The line before the error is a log line (logrus, with a time stamp), never part of it.
	if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) > 1 && !strings.HasPrefix(lines[len(lines)-2], "time=") {
		ok = false
	}
	if !ok {
		t.Errorf("%s: exit %d, want 1 and a one-line error containing %q; stderr:\n%s", what, r.code, wants, r.stderr)
	}
}

// TestE2ELockBuildRebuild is the user's path: `ipa-oci lock` writes the lock (the second run,
// and a forced re-resolution, write identical bytes), `build --push` builds from it and
// installs exactly the locked closure, and after both branches moved on and the local lock is
// gone, `rebuild` replays the build-info's lock: MATCH, and a build-info identical to the
// byte. A build without a lock then locks first, says so, and follows the moved branches.
func TestE2ELockBuildRebuild(t *testing.T) {
	p := newLockProject(t)
	reg := testenv.StartRegistry(t)

	r := ipa(t, "lock", "-c", p.cfg)
	if r.code != 0 || r.stdout != p.lock+" created\namd64: 6 wheels\narm64: 7 wheels\n" {
		t.Fatalf("lock: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	first := mustReadFile(t, p.lock)
	l, err := builder.ParseLock(first)
	if err != nil {
		t.Fatal(err)
	}
	imageID, _ := e2eBuilderImage(t)
	if l.BuilderImage != imageID || l.Requirements.Ref != "master" || l.Python.Index != p.in.Index.URL {
		t.Errorf("lock: builder %s requirements %+v index %s", l.BuilderImage, l.Requirements, l.Python.Index)
	}
	for _, w := range lockfixture.Closure("arm64") {
		if !bytes.Contains(first, []byte(`    url: "`+p.in.Index.URLOf(w.FileName())+`"`+"\n    sha256: \""+w.SHA256()+"\"\n")) {
			t.Errorf("the lock file lacks %s with its sha256:\n%s", w.FileName(), first)
		}
	}
	r = ipa(t, "lock", "-c", p.cfg)
	if r.code != 0 || !strings.HasPrefix(r.stdout, p.lock+" is up to date\n") || !bytes.Equal(mustReadFile(t, p.lock), first) {
		t.Errorf("second lock: exit %d, %s, the file changed: %t", r.code, r.stdout, !bytes.Equal(mustReadFile(t, p.lock), first))
	}
	r = ipa(t, "lock", "-c", p.cfg, "--update")
	if r.code != 0 || !strings.HasPrefix(r.stdout, p.lock+" written\n") || !bytes.Equal(mustReadFile(t, p.lock), first) {
		t.Errorf("lock --update without changes: exit %d, %s, the file changed:\n%s", r.code, r.stdout, mustReadFile(t, p.lock))
	}

	ref := reg.Host + "/ipa/locked:1"
	out := filepath.Join(p.dir, "out")
	r = ipa(t, "build", "-c", p.cfg, "-o", out, "--push", ref, "--plain-http", "--ipa-version", "1")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "running `ipa-oci lock` first") || !bytes.Equal(mustReadFile(t, p.lock), first) {
		t.Error("build with a matching lock re-locked")
	}
	if got, want := lockfixture.DistInfos(t, filepath.Join(out, builder.InitramfsName)), lockfixture.ClosureDistInfos("amd64"); !reflect.DeepEqual(got, want) {
		t.Errorf("initramfs site-packages:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(string(mustReadFile(t, filepath.Join(out, builder.BuildLogName))), "Executing post-build script /ipa/external/board/ipa/post-build.sh") {
		t.Error("the build did not run post-build.sh")
	}
	if got := initramfsFile(t, filepath.Join(out, builder.InitramfsName), "*etc/ipa-build-info"); !strings.Contains(got, "REQUIREMENTS_GIT_REF=master\n") {
		t.Errorf("post-build's /etc/ipa-build-info:\n%s", got)
	}
	bi, err := builder.ReadBuildInfoFile(filepath.Join(out, builder.BuildInfoName))
	if err != nil {
		t.Fatal(err)
	}
	if bi.Lock == nil || !bytes.Equal(bi.Lock.Marshal(), first) {
		t.Fatalf("build-info does not embed the lock")
	}

	// Both branches move on (upper-constraints now pins beta 1.0); the local lock is gone. The
	// auditor's rebuild uses the build-info's lock, nothing else.
	p.in.IPA.Commit(t, "master", "1700000500", map[string]string{"CHANGES": "moved\n"})
	p.in.Requirements.Commit(t, "master", "1700000600", map[string]string{"upper-constraints.txt": strings.Replace(lockfixture.UpperConstraints, "beta===2.0;", "beta===1.0;", 1)})
	os.Remove(p.lock)
	rebuilt := filepath.Join(p.dir, "rebuilt")
	// The auditor's own download cache holds only the stand-in's source (its URL is a dead one):
	// the git commits and the wheels are fetched anew.
	writeFile(t, filepath.Join(p.dir, "dl-auditor", "standin", "src.tar"), "stand-in source\n")
	r = ipa(t, "rebuild", ref, "--plain-http", "-c", p.cfg, "-o", rebuilt, "--dl-dir", filepath.Join(p.dir, "dl-auditor"))
	if r.code != 0 || strings.Count(r.stdout, "MATCH ") != 2 {
		t.Fatalf("rebuild: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if a, b := mustReadFile(t, filepath.Join(out, builder.BuildInfoName)), mustReadFile(t, filepath.Join(rebuilt, builder.BuildInfoName)); !bytes.Equal(a, b) {
		t.Errorf("the rebuild's build-info differs:\n%s\nvs\n%s", b, a)
	}
	if _, err := os.Stat(p.lock); err == nil {
		t.Error("rebuild wrote a local lock")
	}

	// A build without a lock locks first (and says so): the moved branches, beta 1.0 now.
	r = ipa(t, "build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out2"))
	if r.code != 0 || !strings.Contains(r.stderr, "no "+p.lock+": running `ipa-oci lock` first") {
		t.Fatalf("build without a lock: exit %d\n%s", r.code, r.stderr)
	}
	l2, err := builder.LoadLock(p.lock)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Requirements.Commit == l.Requirements.Commit || l2.IPA.Commit == l.IPA.Commit {
		t.Errorf("the new lock did not follow the branches: %s %s", l2.IPA.Commit, l2.Requirements.Commit)
	}
	var versions []string
	for _, w := range l2.WheelsFor("amd64") {
		versions = append(versions, w.Name+"=="+w.Version)
	}
	if got := strings.Join(versions, " "); !strings.Contains(got, "beta==1.0") {
		t.Errorf("new lock's closure %s, want beta 1.0 as upper-constraints now pins", got)
	}
}

// TestE2ELockMismatch: a lock that no longer matches the configuration is refused before any
// container runs, naming the field (ipa-oci.yaml or a flag), and --update-lock re-locks and
// builds.
func TestE2ELockMismatch(t *testing.T) {
	p := newLockProject(t)
	if r := ipa(t, "lock", "-c", p.cfg); r.code != 0 {
		t.Fatalf("lock: exit %d\n%s", r.code, r.stderr)
	}
	before := mustReadFile(t, p.lock)
	p.writeConfig(t, "master", "v1.0")
	r := ipa(t, "build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out"))
	wantOneLineError(t, "changed requirements.ref", r, p.lock+` does not match the configuration: requirements.ref is "v1.0" in `+p.cfg+` (or its flag) but "master" in the lock`, "--update-lock")
	if strings.Contains(r.stderr, "starting phase") {
		t.Errorf("a container ran before the refusal:\n%s", r.stderr)
	}
	p.writeConfig(t, "master", "master")
	r = ipa(t, "build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out"), "--python-index", "http://127.0.0.1:9/simple")
	wantOneLineError(t, "--python-index", r, `pythonIndex is "http://127.0.0.1:9/simple"`)
	if !bytes.Equal(mustReadFile(t, p.lock), before) {
		t.Error("a refused build changed the lock")
	}

	p.writeConfig(t, "master", "v1.0")
	r = ipa(t, "build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out"), "--update-lock")
	if r.code != 0 {
		t.Fatalf("build --update-lock: exit %d\n%s", r.code, r.stderr)
	}
	l, err := builder.LoadLock(p.lock)
	if err != nil || l.Requirements.Ref != "v1.0" {
		t.Errorf("lock after --update-lock: %+v, %v", l, err)
	}
}

// TestE2ELockBadInputs: each bad input is one clear error line, exit 1, and no lock written
// (or the previous lock kept).
func TestE2ELockBadInputs(t *testing.T) {
	p := newLockProject(t)
	r := ipa(t, "lock", "-c", p.cfg, "--ipa-ref", "nope")
	wantOneLineError(t, "unknown ref", r, "resolve "+p.in.IPA.URL+" nope: no such branch or tag")
	r = ipa(t, "lock", "-c", p.cfg, "--requirements-ref", "no-uc")
	wantOneLineError(t, "requirements branch without upper-constraints.txt", r,
		"requirements "+p.in.Requirements.URL+" no-uc (commit ", ") has no upper-constraints.txt: use an openstack/requirements branch or tag that has one")
	r = ipa(t, "lock", "-c", p.cfg, "--ipa-ref", "fastext")
	wantOneLineError(t, "platform-only dependency", r,
		"lock: python dependency fastext 1.0 (required by ironic-python-agent) for amd64 has no pure-Python wheel on "+p.in.Index.URL+
			" (only fastext-1.0-cp312-cp312-manylinux_2_28_x86_64.whl) and no Buildroot package provides it: Buildroot's python-fastext is needed",
		"Buildroot has no python-fastext package", "BR2_PACKAGE_PYTHON_FASTEXT", "IRONIC_PYTHON_AGENT_DEPENDENCIES")
	if _, err := os.Stat(p.lock); err == nil {
		t.Fatal("a failed lock wrote the lock file")
	}

	// A lock edited by hand into invalid YAML: build and lock refuse it naming the file,
	// lock --update replaces it.
	if r := ipa(t, "lock", "-c", p.cfg); r.code != 0 {
		t.Fatalf("lock: exit %d\n%s", r.code, r.stderr)
	}
	good := mustReadFile(t, p.lock)
	writeFile(t, p.lock, strings.Replace(string(good), "sourceDateEpoch: ", "sourceDateEpoch: [", 1))
	for _, args := range [][]string{{"build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out")}, {"lock", "-c", p.cfg}} {
		r = ipa(t, args...)
		wantOneLineError(t, args[0]+" with invalid YAML", r, "lock file "+p.lock+": not a valid lock (yaml: line ", "fix it, or lock anew (`ipa-oci lock --update`)")
	}
	writeFile(t, p.lock, strings.Replace(string(good), `sha256: "`, `sha256: "0`, 2))
	r = ipa(t, "build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out"))
	wantOneLineError(t, "build with an invalid sha256", r, "lock file "+p.lock+": python.wheels[0]: alpha: sha256 \"0")
	if r = ipa(t, "lock", "-c", p.cfg, "--update"); r.code != 0 || !bytes.Equal(mustReadFile(t, p.lock), good) {
		t.Errorf("lock --update over an invalid lock: exit %d\n%s", r.code, r.stderr)
	}

	// A locked wheel replaced on the index: refused in the fetch phase, naming it.
	evil := lockfixture.Beta20
	evil.Salt = "replaced after the lock"
	p.in.Index.Put(t, evil)
	fresh := filepath.Join(p.dir, "dl-fresh")
	writeFile(t, filepath.Join(fresh, "standin", "src.tar"), "stand-in source\n")
	r = ipa(t, "build", "-c", p.cfg, "-o", filepath.Join(p.dir, "out"), "--dl-dir", fresh)
	wantOneLineError(t, "replaced wheel", r, "fetch phase: wheel beta-2.0-py3-none-any.whl from "+p.in.Index.URLOf(evil.FileName())+
		" does not have the sha256 "+p.lock+" pins (pinned "+lockfixture.Beta20.SHA256()+", downloaded "+evil.SHA256()+")")
}
