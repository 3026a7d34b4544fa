package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// plantScript is a post-build script: it runs in the build phase as the container user and
// tries to leave, for the host, every kind of code git would run or configuration it would
// parse. Each planted command would create a file in the host directory marks. It prints
// "PLANT <what> ok|denied" for each attempt.
func plantScript(marks string) string {
	return `#!/bin/bash
M=` + shellQuote(marks) + `
plant() { local what=$1; shift; if ( set -e; "$@" ) 2>/dev/null; then echo "PLANT $what ok"; else echo "PLANT $what denied"; fi; }
hook() { printf '#!/bin/sh\ntouch %s/%s\n' "$M" "$2" > "$1" && chmod +x "$1"; }
for name in IPA REQUIREMENTS; do
  dv=IPA_OCI_${name}_GIT_DIR; uv=IPA_OCI_${name}_URL
  d=${!dv}; u=${!uv}; n=${name,,}
  [ -n "$d" ] || continue
  for h in reference-transaction pre-auto-gc post-checkout post-merge post-rewrite post-update update pre-receive post-receive; do
    plant "$n hooks/$h" hook "$d/hooks/$h" "$n-hook-$h"
  done
  plant "$n core.hooksPath" sh -c "mkdir -p '$d/evil-hooks' && git config --file '$d/config' core.hooksPath evil-hooks"
  for h in reference-transaction pre-auto-gc; do
    plant "$n hooksPath/$h" hook "$d/evil-hooks/$h" "$n-hookspath-$h"
  done
  plant "$n gc.auto" git config --file "$d/config" gc.auto 1
  plant "$n core.fsmonitor" git config --file "$d/config" core.fsmonitor "touch $M/$n-fsmonitor"
  plant "$n core.sshCommand" git config --file "$d/config" core.sshCommand "touch $M/$n-sshcommand"
  plant "$n credential.helper" git config --file "$d/config" credential.helper "!touch $M/$n-credential-helper"
  plant "$n include.path" sh -c "printf '[core]\n\tfsmonitor = touch $M/$n-include-fsmonitor\n[credential]\n\thelper = !touch $M/$n-include-credential\n' > '$d/evil.config' && git config --file '$d/config' include.path evil.config"
  plant "$n .gitattributes filter" sh -c "mkdir -p '$d/info' && echo '* filter=evil diff=evil' > '$d/info/attributes' && git config --file '$d/config' filter.evil.smudge 'touch $M/$n-smudge' && git config --file '$d/config' filter.evil.clean 'touch $M/$n-clean' && git config --file '$d/config' diff.evil.textconv 'touch $M/$n-textconv'"
  [ $name = REQUIREMENTS ] && plant "$n ext:: url" sh -c "git config --file '$d/config' protocol.ext.allow always && git config --file '$d/config' 'url.ext::sh -c touch% $M/$n-ext-url% >&2.insteadOf' '$u'"
done
# The download cache: Buildroot's own git cache (the next fetch phase runs git there), the
# fetch stamps, and the directory the host's mirrors live in.
plant "dl buildroot git cache" sh -c "mkdir -p /ipa/dl/standin/git/hooks && printf '#!/bin/sh\ntouch /ipa/dl/standin-git-hook\n' > /ipa/dl/standin/git/hooks/post-checkout"
plant "dl stamp" sh -c ": > /ipa/dl/.ipa-oci-fetch/forged"
plant "dl file" sh -c ": > /ipa/dl/planted"
plant "dl mirrors dir" sh -c ": > /ipa/dl/ipa-oci-git/planted"
`
}

// TestBuildPhaseCannotPlantHostCode plants every vector listed in plantScript from inside the
// build phase, then runs what follows on the host: a second build after both repositories got
// new commits (host git fetches into the mirrors, updates refs, reads logs; the fetch phase runs
// again) and an offline build (host git resolves refs from the mirrors). No planted command may
// ever run on the host, and the build phase must not have been able to write any of it.
func TestBuildPhaseCannotPlantHostCode(t *testing.T) {
	marks := filepath.Join(t.TempDir(), "marks")
	if err := os.Mkdir(marks, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(marks, 0o777) // a planted command running on the host as anyone could mark
	f := newFixture(t, `BR2_ROOTFS_POST_BUILD_SCRIPT="$(BR2_EXTERNAL_IPA_PATH)/report.sh $(BR2_EXTERNAL_IPA_PATH)/plant.sh"`)
	mustWriteExec(t, filepath.Join(f.external, "plant.sh"), plantScript(marks))
	ctx := context.Background()
	o := f.options(filepath.Join(f.dir, "out1"))
	o.Requirements.Ref = "master"
	res, err := Build(ctx, o)
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, f.logBuf)
	}
	log1 := string(mustRead(t, res.BuildLog))
	if n := strings.Count(log1, "PLANT "); n < 40 {
		t.Fatalf("the plant script reported %d attempts, want every vector tried:\n%s", n, log1)
	}

	// What the host does next: new commits on both branches make it fetch into both mirrors.
	ipaHead := addCommit(t, f.ipaRepo, "1700000200")
	reqHead := addCommit(t, f.reqRepo, "1700000300")
	o2 := f.options(filepath.Join(f.dir, "out2"))
	o2.Requirements.Ref = "master"
	o2.ForceFetch = true
	res2, err2 := Build(ctx, o2)
	o3 := f.options(filepath.Join(f.dir, "out3"))
	o3.Requirements.Ref = "master"
	o3.Offline = true
	res3, err3 := Build(ctx, o3)

	entries, err := os.ReadDir(marks)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a command planted by the build phase ran on the host: %s", e.Name())
	}
	for _, l := range strings.Split(log1, "\n") {
		if strings.Contains(l, "PLANT ") && !strings.HasSuffix(l, " denied") {
			t.Errorf("the build phase could write: %s", strings.TrimPrefix(l, "[build] "))
		}
	}
	for _, p := range []string{"planted", ".ipa-oci-fetch/forged", "standin/git", "ipa-oci-git/planted"} {
		if _, err := os.Lstat(filepath.Join(o.DLDir, p)); err == nil {
			t.Errorf("the build phase wrote %s into the download cache", p)
		}
	}
	// The host's git work after the planting did happen and saw the new commits.
	if err2 != nil {
		t.Errorf("second build: %v", err2)
	} else if res2.Info.Inputs.IPA.Commit != ipaHead || res2.Info.Inputs.Requirements.Commit != reqHead {
		t.Errorf("second build used %s / %s, want the new commits %s / %s", res2.Info.Inputs.IPA.Commit, res2.Info.Inputs.Requirements.Commit, ipaHead, reqHead)
	} else if res2.FetchSkipped {
		t.Error("second build skipped the fetch phase")
	}
	if err3 != nil {
		t.Errorf("offline build: %v", err3)
	} else if res3.Info.Inputs.IPA.Commit != ipaHead {
		t.Errorf("offline build resolved master to %s, want %s", res3.Info.Inputs.IPA.Commit, ipaHead)
	}
}

// TestBuildOutputSymlinksAreNotFollowed: a post-image script replaces images/bzImage with a
// symlink to a host file. The host must refuse it, not copy the host file into the artifact.
func TestBuildOutputSymlinksAreNotFollowed(t *testing.T) {
	f := newFixture(t, `BR2_ROOTFS_POST_IMAGE_SCRIPT="$(BR2_EXTERNAL_IPA_PATH)/swap.sh"`)
	secret := filepath.Join(f.dir, "host-secret")
	mustWrite(t, secret, "host secret: hunter2\n")
	mustWriteExec(t, filepath.Join(f.external, "swap.sh"), "#!/bin/sh\nln -sf "+shellQuote(secret)+" \"$BINARIES_DIR/bzImage\"\n")
	o := f.options(filepath.Join(f.dir, "out"))
	_, err := Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "images/bzImage") || !strings.Contains(err.Error(), "symlink out of the output directory is refused") {
		t.Errorf("build with images/bzImage -> host file: error %v, want a refusal naming images/bzImage", err)
	}
	if b, err := os.ReadFile(filepath.Join(o.Output, KernelName)); err == nil && strings.Contains(string(b), "hunter2") {
		t.Errorf("the host file was copied into %s", KernelName)
	}
}

// TestHostGitIgnoresPlantedConfig is the second line of defence: even in a mirror that the host
// user owns but someone else wrote into (hooks, hooksPath, include.path, fsmonitor, credential
// helper, gc.auto, an ext:: URL rewrite), and with a hostile ~/.gitconfig and system config
// named in the environment, host-side git runs none of it.
func TestHostGitIgnoresPlantedConfig(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	marks := t.TempDir()
	mirrors := filepath.Join(f.dir, "mirrors")
	os.Mkdir(mirrors, 0o755)
	g := newGitRunner(os.Environ())
	ipaDir := filepath.Join(mirrors, mirrorName(f.ipaRepo))
	reqDir := filepath.Join(mirrors, mirrorName(f.reqRepo))
	if _, err := g.ensureCommit(ctx, ipaDir, f.ipaRepo, "master", f.ipaHead, false); err != nil {
		t.Fatal(err)
	}
	reqHead, _ := g.lsRemote(ctx, f.reqRepo, "master")
	if _, err := g.ensureCommit(ctx, reqDir, f.reqRepo, "master", reqHead, false); err != nil {
		t.Fatal(err)
	}
	// Plant directly, as the owner: the same script the build phase runs, pointed at these mirrors.
	plant := exec.Command("bash", "-c", plantScript(marks))
	plant.Env = append(os.Environ(), "IPA_OCI_IPA_GIT_DIR="+ipaDir, "IPA_OCI_IPA_URL="+f.ipaRepo,
		"IPA_OCI_REQUIREMENTS_GIT_DIR="+reqDir, "IPA_OCI_REQUIREMENTS_URL="+f.reqRepo)
	out, _ := plant.CombinedOutput()
	if strings.Count(string(out), " ok\n") < 30 {
		t.Fatalf("planting into the mirrors failed:\n%s", out)
	}
	ipaNew := addCommit(t, f.ipaRepo, "1700000200")
	reqNew := addCommit(t, f.reqRepo, "1700000300")
	// The user's own git configuration must not reach host-side git either.
	home := t.TempDir()
	hooks := filepath.Join(home, "hooks")
	os.Mkdir(hooks, 0o755)
	for _, h := range []string{"reference-transaction", "pre-auto-gc"} {
		mustWriteExec(t, filepath.Join(hooks, h), "#!/bin/sh\ntouch "+shellQuote(filepath.Join(marks, "home-"+h))+"\n")
	}
	mustWrite(t, filepath.Join(home, ".gitconfig"), "[core]\n\thooksPath = "+hooks+"\n")
	mustWrite(t, filepath.Join(home, "system.gitconfig"), "[core]\n\thooksPath = "+hooks+"\n")
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_SYSTEM", filepath.Join(home, "system.gitconfig"))
	t.Setenv("XDG_CONFIG_HOME", home)
	g = newGitRunner(os.Environ())

	if _, err := g.ensureCommit(ctx, ipaDir, f.ipaRepo, "master", ipaNew, false); err != nil {
		t.Errorf("fetch into the planted IPA mirror: %v", err)
	}
	if got, err := g.resolveOffline(ctx, ipaDir, f.ipaRepo, "master"); err != nil || got != ipaNew {
		t.Errorf("offline resolve in the planted mirror: %s, %v; want %s", got, err, ipaNew)
	}
	// A mirror nobody planted anything in: only the user's and system git config could act.
	if _, err := g.ensureCommit(ctx, filepath.Join(mirrors, "clean.git"), f.ipaRepo, "master", ipaNew, false); err != nil {
		t.Errorf("fetch into a new mirror: %v", err)
	}
	// The ext:: rewrite makes this fetch fail (the transport is refused); it must not run.
	g.ensureCommit(ctx, reqDir, f.reqRepo, "master", reqNew, false)
	g.lsRemote(ctx, f.reqRepo, "master")

	entries, _ := os.ReadDir(marks)
	var ran []string
	for _, e := range entries {
		ran = append(ran, e.Name())
	}
	sort.Strings(ran)
	if len(ran) > 0 {
		t.Errorf("host-side git ran planted commands: %s", strings.Join(ran, " "))
	}
}

// TestHostGitRefusesForeignMirror: a mirror (or the mirrors directory) owned by another user —
// the container user, say — is refused with a message saying what to do, never trusted.
func TestHostGitRefusesForeignMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a mirror to another user")
	}
	f := newFixture(t)
	ctx := context.Background()
	g := newGitRunner(nil)
	dir := filepath.Join(f.dir, "mirror.git")
	if _, err := g.ensureCommit(ctx, dir, f.ipaRepo, "master", f.ipaHead, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(dir, 4321, 4321); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"ensureCommit":   func() error { _, err := g.ensureCommit(ctx, dir, f.ipaRepo, "master", f.ipaHead, true); return err },
		"resolveOffline": func() error { _, err := g.resolveOffline(ctx, dir, f.ipaRepo, "master"); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "owned by uid 4321") || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("%s on a mirror owned by uid 4321: %v", name, err)
		}
	}
	// A build whose download cache has a mirrors directory owned by the container user (as an
	// older ipa-oci left it) or replaced by a symlink stops before any git command runs.
	o := f.options(filepath.Join(f.dir, "out"))
	mirrorsDir := filepath.Join(o.DLDir, "ipa-oci-git")
	os.MkdirAll(mirrorsDir, 0o755)
	os.Lchown(mirrorsDir, 1000, 1000)
	if _, err := Build(ctx, o); err == nil || !strings.Contains(err.Error(), mirrorsDir+" is owned by uid 1000") {
		t.Errorf("build with a container-owned mirrors directory: %v", err)
	}
	os.Remove(mirrorsDir)
	os.Symlink(f.dir, mirrorsDir)
	if _, err := Build(ctx, o); err == nil || !strings.Contains(err.Error(), mirrorsDir+" is not a directory") {
		t.Errorf("build with a symlinked mirrors directory: %v", err)
	}
}

// inspectingClient is the real engine client; right after each container starts it inspects
// it through the Engine API and keeps the result by phase label.
type inspectingClient struct {
	client.APIClient
	mu   sync.Mutex
	seen map[string]container.InspectResponse
}

func (c *inspectingClient) ContainerStart(ctx context.Context, id string, o client.ContainerStartOptions) (client.ContainerStartResult, error) {
	res, err := c.APIClient.ContainerStart(ctx, id, o)
	if err != nil {
		return res, err
	}
	ir, ierr := c.APIClient.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if ierr != nil {
		return res, fmt.Errorf("test inspect: %w", ierr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]container.InspectResponse{}
	}
	c.seen[ir.Container.Config.Labels[LabelPhase]] = ir.Container
	return res, nil
}

// TestPhaseContainersAreHardened inspects the lock step's and both phases' containers through
// the Engine API: no capabilities, no-new-privileges, a pids limit, a read-only root
// filesystem, every input mounted read-only, writable only what the step must write, and the
// network per step.
func TestPhaseContainersAreHardened(t *testing.T) {
	f, in := newLockFixture(t)
	o := f.lockOptions(in, filepath.Join(f.dir, "out"))
	o.KernelConfig = filepath.Join(f.dir, "kernel-config")
	mustWrite(t, filepath.Join(o.KernelConfig, "x86_64.config"), "CONFIG_64BIT=y\n")
	ic := &inspectingClient{APIClient: tenv.cli}
	o.Docker = ic
	l, err := ResolveLock(context.Background(), o)
	if err != nil {
		t.Fatalf("lock: %v\n%s", err, f.logBuf)
	}
	o.Lock = l
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatalf("build: %v\n%s", err, f.logBuf)
	}
	wantMounts := map[string]map[string]bool{ // phase -> destination -> writable
		"lock": {ContainerLockInput: false, ContainerOutput: true, ContainerDL: true,
			ContainerDL + "/ipa-oci-git": false, ContainerDL + "/.ipa-oci-fetch": false},
		"fetch": {ContainerBuildroot: false, ContainerExternal: false, ContainerKernelConfig: false, ContainerLock: false,
			ContainerOutput: true, ContainerDL: true, ContainerDL + "/ipa-oci-git": false, ContainerDL + "/.ipa-oci-fetch": false},
		"build": {ContainerBuildroot: false, ContainerExternal: false, ContainerKernelConfig: false, ContainerLock: false,
			ContainerOutput: true, ContainerDL: false, ContainerCcache: true},
	}
	wantNetwork := map[string]string{"lock": "host", "fetch": "host", "build": "none"}
	for _, phase := range []string{"lock", "fetch", "build"} {
		c, ok := ic.seen[phase]
		if !ok {
			t.Errorf("no %s phase container was started", phase)
			continue
		}
		hc := c.HostConfig
		// dockerd reports the CapDrop it was given; Podman reports, capability by capability,
		// which of its default set the container lacks. Either way the bounding set seen from
		// inside must be empty (checked below).
		dropped := strings.Join(hc.CapDrop, ",") == "ALL"
		if tenv.engine == enginePodman {
			dropped = true
			for _, c := range podmanDefaultCaps {
				dropped = dropped && contains(hc.CapDrop, c)
			}
		}
		if !dropped || len(hc.CapAdd) != 0 || hc.Privileged {
			t.Errorf("%s: CapDrop %v CapAdd %v Privileged %v, want all capabilities dropped", phase, hc.CapDrop, hc.CapAdd, hc.Privileged)
		}
		if !contains(hc.SecurityOpt, "no-new-privileges") {
			t.Errorf("%s: SecurityOpt %v lacks no-new-privileges", phase, hc.SecurityOpt)
		}
		if tenv.facts.pidsLimitIgnored() {
			// The engine drops the limit: the user must be told.
			if !strings.Contains(f.logBuf.String(), pidsLimitWarning()) {
				t.Errorf("%s: the engine ignores the pids limit and the log does not say so", phase)
			}
		} else if hc.PidsLimit == nil || *hc.PidsLimit != pidsLimit {
			t.Errorf("%s: PidsLimit %v, want %d", phase, hc.PidsLimit, pidsLimit)
		}
		if !hc.ReadonlyRootfs {
			t.Errorf("%s: root filesystem is writable", phase)
		}
		if string(hc.NetworkMode) != wantNetwork[phase] {
			t.Errorf("%s: NetworkMode %q, want %q", phase, hc.NetworkMode, wantNetwork[phase])
		}
		if u := c.Config.User; u == "" || strings.HasPrefix(u, "0:") || u == "0" {
			t.Errorf("%s: runs as %q", phase, u)
		}
		got := map[string]bool{}
		for _, m := range c.Mounts {
			got[m.Destination] = m.RW
		}
		if fmt.Sprint(got) != fmt.Sprint(wantMounts[phase]) {
			t.Errorf("%s: mounts (destination:writable)\n got %v\nwant %v", phase, got, wantMounts[phase])
		}
	}
	// And from the inside (report.sh): no capability even in the bounding set, NoNewPrivs,
	// the pids limit in the cgroup, the root filesystem mounted read-only.
	buildLog := string(mustRead(t, filepath.Join(o.Output, BuildLogName)))
	for _, phase := range []string{"fetch", "build"} {
		wants := []string{
			"CAPS " + phase + " 0000000000000000 0000000000000000", "NNP " + phase + " 1",
			"MOUNT " + phase + " / ro", "MOUNT " + phase + " /ipa/kernel-config ro", "WRITE " + phase + " /tmp ok",
		}
		if !tenv.facts.pidsLimitIgnored() {
			wants = append(wants, fmt.Sprintf("PIDS %s %d", phase, pidsLimit))
		}
		for _, want := range wants {
			if !strings.Contains(buildLog, want+"\n") {
				t.Errorf("build.log lacks %q", want)
			}
		}
	}
}

// TestFetchNeedsDefaultNetworkOrHostNetwork runs on the shared engine, which has no bridge
// (dockerd --bridge=none): without HostNetwork the fetch phase is refused before any container
// is created, with a message naming the flag and the config field; an offline build, which has
// no fetch phase, does not need either.
func TestFetchNeedsDefaultNetworkOrHostNetwork(t *testing.T) {
	needEnv(t)
	nets, err := tenv.cli.NetworkList(context.Background(), client.NetworkListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets.Items {
		if n.Name == "bridge" {
			t.Skip("the test engine has a default network (Podman always has one); TestFetchNetworkOnBridgeEngine covers that")
		}
	}
	f := newFixture(t)
	o := f.options(filepath.Join(f.dir, "out"))
	o.HostNetwork = false
	_, err = Build(context.Background(), o)
	if !errors.Is(err, ErrNoDefaultNetwork) || strings.Contains(err.Error(), "--host-network") || !strings.Contains(err.Error(), "hostNetwork: true") {
		t.Fatalf("fetch on an engine without a bridge: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	assertNoContainers(t, o.Output)

	// Fill the download cache with host networking, then an offline build needs no network.
	o.HostNetwork = true
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.HostNetwork, o.Offline = false, true
	if _, err := Build(context.Background(), o); err != nil {
		t.Errorf("offline build without host networking: %v", err)
	}
}

// addCommit adds a commit (fixed date) on master of the bare repository at repoURL (made by
// makeRepo) and returns it.
func addCommit(t testing.TB, repoURL, date string) string {
	t.Helper()
	bare := strings.TrimPrefix(repoURL, "file://")
	work := bare + ".work"
	env := append(os.Environ(), "GIT_AUTHOR_DATE="+date+" +0000", "GIT_COMMITTER_DATE="+date+" +0000",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	mustWrite(t, filepath.Join(work, "CHANGES"), date+"\n")
	var head string
	for _, args := range [][]string{{"add", "."}, {"commit", "-q", "-m", "change " + date}, {"push", "-q", bare, "master"}, {"rev-parse", "HEAD"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		head = strings.TrimSpace(string(out))
	}
	return head
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
