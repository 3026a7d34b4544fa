package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/ipa-oci/ipa-oci/internal/lockfixture"
	"github.com/moby/moby/api/types/mount"
	"github.com/sirupsen/logrus"
)

// buildrootTarballEnv names a Buildroot 2025.02.16 tarball; by default it is looked for in
// ../shared/buildroot/ beside the repository and in /work/shared/buildroot/ (never downloaded).
const buildrootTarballEnv = "IPA_OCI_BUILDROOT_TARBALL"

// realBuildrootTree returns the real Buildroot 2025.02.16 tree, extracted by fetchBuildroot
// from the local tarball into the cache (${IPA_OCI_CACHE:-~/.cache/ipa-oci}/buildroot/<sha256>/
// tree, about 17 s once, then reused).
func realBuildrootTree(t *testing.T) string {
	t.Helper()
	const name = "buildroot-2025.02.16.tar.xz"
	cands := []string{os.Getenv(buildrootTarballEnv)}
	if cands[0] == "" {
		repo, _ := filepath.Abs("..")
		cands = []string{filepath.Join(filepath.Dir(repo), "shared", "buildroot", name), filepath.Join("/work/shared/buildroot", name)}
	}
	for _, c := range cands {
		sum, err := fsutil.SHA256File(c)
		if err != nil {
			continue
		}
		tree, err := fetchBuildroot(context.Background(), testCacheDir(t), "file://"+c, sum, false, tenvLog())
		if err != nil {
			t.Fatal(err)
		}
		return tree
	}
	t.Fatalf("Buildroot 2025.02.16 tarball not found (looked at %s); set %s to its path", strings.Join(cands, ", "), buildrootTarballEnv)
	return ""
}

// TestRealBuildrootTakesWheelList hands the wheel list ipa-oci generates from a lock to the
// real Buildroot 2025.02.16 tree with the real buildroot-external tree, in the builder
// container as a build does: `make ipa_x86_64_defconfig`, then printvars shows the package
// picked the list up (IRONIC_PYTHON_AGENT_EXTRA_DOWNLOADS are the locked URLs, the generated
// hash file is one of IRONIC_PYTHON_AGENT_HASH_FILES), and `make ironic-python-agent-source`
// downloads the agent and every wheel through Buildroot's own dl-wrapper and check-hash. With
// a wheel replaced on the index, Buildroot's check-hash refuses it and ipa-oci's fetch-phase
// watcher recognises Buildroot's message.
func TestRealBuildrootTakesWheelList(t *testing.T) {
	needEnv(t)
	tree := realBuildrootTree(t)
	dir := t.TempDir()
	in := lockfixture.NewInputs(t, filepath.Join(dir, "git"))
	ipaCommit := gitRev(t, in.IPA.Bare, "master")
	l := &Lock{LockVersion: LockVersion, BuilderImage: tenv.imageID, SourceDateEpoch: 1700000000,
		Buildroot:    LockedBuildroot{TreeSHA256: strings.Repeat("0", 64)},
		IPA:          &ResolvedGit{Repo: in.IPA.URL, Ref: "master", Commit: ipaCommit},
		Requirements: &ResolvedGit{Repo: in.Requirements.URL, Ref: "master", Commit: gitRev(t, in.Requirements.Bare, "master")},
		Python:       &LockedPython{Index: in.Index.URL, Version: "3.12.13", BuildrootPackages: []string{}},
	}
	for _, w := range lockfixture.Closure("amd64") {
		l.Python.Wheels = append(l.Python.Wheels, Wheel{Name: lockfixture.Canonical(w.Name), Version: w.Version,
			URL: in.Index.URLOf(w.FileName()), SHA256: w.SHA256(), Arches: []string{"amd64"}})
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	lockDir := filepath.Join(dir, "lock")
	os.Mkdir(lockDir, 0o755)
	if err := l.WriteWheelList(lockDir, "amd64", ContainerLock); err != nil {
		t.Fatal(err)
	}
	external, err := filepath.Abs("../buildroot-external")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o777)
	os.Chmod(out, 0o777) // the container user writes O= (the test may run as root)

	run := func(dl string, script ...string) (string, error) {
		t.Helper()
		os.MkdirAll(dl, 0o777)
		os.Chmod(dl, 0o777)
		var logBuf syncBuffer
		watch := &hashWatch{}
		sink := &logSink{log: tenvLog(), file: &logBuf, watch: func(_, line string) { watch.line(line) }}
		// BR2_BACKUP_SITE= : no download leaves the machine. BR2_TAR_HOST_DEPENDENCY= TAR=tar:
		// pack the agent's git tree with the builder's tar 1.34 instead of building host-tar
		// 1.35, whose source cannot be downloaded here.
		mk := fmt.Sprintf("make --no-print-directory -C %s O=%s BR2_EXTERNAL=%s BR2_IPA_GIT_URL=file:///ipa/ipa.git BR2_IPA_GIT_REF=%s BR2_BACKUP_SITE= BR2_TAR_HOST_DEPENDENCY= TAR=tar %s=%s/%s",
			ContainerBuildroot, ContainerOutput, ContainerExternal, ipaCommit, WheelsMkVar, ContainerLock, WheelsMkName)
		// The stand-in IPA repository belongs to the test's user, not the container's.
		cmd := "set -euo pipefail\ngit config --global --add safe.directory '*'\n" + strings.ReplaceAll(strings.Join(script, "\n"), "MAKE", mk)
		user := "1000:1000"
		if os.Getuid() != 0 {
			user = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
		}
		_, err := runContainer(context.Background(), tenv.cli, runSpec{
			phase: "fetch", image: tenv.imageID, cmd: []string{"/bin/bash", "-c", cmd}, user: user,
			env: []string{"HOME=/tmp", "LC_ALL=C.UTF-8", "BR2_DL_DIR=" + ContainerDL},
			mounts: []mount.Mount{bind(tree, ContainerBuildroot, true), bind(external, ContainerExternal, true),
				bind(lockDir, ContainerLock, true), bind(in.IPA.Bare, "/ipa/ipa.git", true),
				bind(out, ContainerOutput, false), bind(dl, ContainerDL, false)},
			network: networkHost, labels: map[string]string{LabelManaged: "true", LabelOutput: out},
		}, sink)
		if err != nil && watch.file != "" {
			err = fmt.Errorf("hash check refused %s (got %s): %w", watch.file, watch.got, err)
		}
		return logBuf.String(), err
	}

	dl := filepath.Join(dir, "dl")
	log, err := run(dl, "MAKE ipa_x86_64_defconfig >/dev/null",
		"MAKE printvars VARS='IRONIC_PYTHON_AGENT_EXTRA_DOWNLOADS IRONIC_PYTHON_AGENT_HASH_FILES'",
		"MAKE ironic-python-agent-source")
	if err != nil {
		t.Fatalf("real Buildroot: %v\n%s", err, log)
	}
	var urls []string
	for _, w := range l.Python.Wheels {
		urls = append(urls, w.URL)
	}
	want := "IRONIC_PYTHON_AGENT_EXTRA_DOWNLOADS=" + strings.Join(urls, " ")
	if !strings.Contains(log, "[fetch] "+want+"\n") {
		t.Errorf("printvars lacks %q:\n%s", want, log)
	}
	hashFiles := regexp.MustCompile(`(?m)^\[fetch\] IRONIC_PYTHON_AGENT_HASH_FILES=(.*)$`).FindStringSubmatch(log)
	if hashFiles == nil || !strings.Contains(" "+hashFiles[1]+" ", " "+ContainerLock+"/"+WheelsHashName+" ") ||
		!strings.Contains(hashFiles[1], "/ipa/external/package/ironic-python-agent/ironic-python-agent.hash") {
		t.Errorf("IRONIC_PYTHON_AGENT_HASH_FILES = %q, want the package's and the generated hash file", hashFiles)
	}
	for _, w := range l.Python.Wheels {
		if !strings.Contains(log, "[fetch] "+w.File()+": OK (sha256: "+w.SHA256+")\n") {
			t.Errorf("Buildroot's check-hash did not check %s", w.File())
		}
		if data, err := os.ReadFile(filepath.Join(dl, "ironic-python-agent", w.File())); err != nil || sha256hex(data) != w.SHA256 {
			t.Errorf("%s not in the download directory with its sha256: %v", w.File(), err)
		}
	}

	// A wheel replaced on the index: Buildroot's own hash check refuses it.
	evil := lockfixture.Beta20
	evil.Salt = "replaced"
	in.Index.Put(t, evil)
	log, err = run(filepath.Join(dir, "dl2"), "rm -f "+ContainerOutput+"/build/ironic-python-agent-*/.stamp_downloaded", "MAKE ironic-python-agent-source")
	if err == nil || !strings.Contains(err.Error(), "hash check refused "+evil.FileName()+" (got "+evil.SHA256()+")") {
		t.Fatalf("real Buildroot with a replaced wheel: %v\n%s", err, log)
	}
	if !bytes.Contains([]byte(log), []byte("ERROR: expected: "+lockfixture.Beta20.SHA256())) {
		t.Errorf("Buildroot's message lacks the locked sha256:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "dl2", "ironic-python-agent", evil.FileName())); err == nil {
		t.Error("Buildroot kept the replaced wheel")
	}

	// Without the wheel list the package's own $(error) stops a build.
	log, err = run(dl, "MAKE -n "+WheelsMkVar+"= all")
	if err == nil || !strings.Contains(log, "ironic-python-agent: no wheel list: IPA_OCI_WHEELS_MK is not set") {
		t.Errorf("make all without a wheel list: %v\n%s", err, log)
	}
}

// tenvLog is a logger that discards.
func tenvLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
