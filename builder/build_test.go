package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

func TestBuildStandin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	out1 := filepath.Join(f.dir, "out1")
	res, err := Build(ctx, f.options(out1))
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, f.logBuf)
	}
	if res.FetchSkipped {
		t.Fatal("first build skipped the fetch phase")
	}

	// Artifacts: an x86 boot header-shaped kernel and an xz initramfs.
	kernel := mustRead(t, filepath.Join(out1, KernelName))
	if len(kernel) < 0x206 || string(kernel[0x202:0x206]) != "HdrS" {
		t.Errorf("kernel artifact has no HdrS magic")
	}
	initrd := mustRead(t, filepath.Join(out1, InitramfsName))
	if !bytes.HasPrefix(initrd, []byte("\xfd7zXZ\x00")) {
		t.Errorf("initramfs is not xz: % x", initrd[:6])
	}

	// build-info.json: inputs and outputs.
	bi, err := ReadBuildInfoFile(filepath.Join(out1, BuildInfoName))
	if err != nil {
		t.Fatal(err)
	}
	in := bi.Inputs
	extHash, _ := TreeHash(f.external)
	brHash, _ := TreeHash(tenv.standin)
	checks := []struct{ name, got, want string }{
		{"buildroot.url", in.Buildroot.URL, tenv.brURL},
		{"buildroot.sha256", in.Buildroot.SHA256, tenv.brSHA},
		{"buildroot.treeSha256", in.Buildroot.TreeSHA256, brHash},
		{"external.sha256", in.External.SHA256, extHash},
		{"defconfig", in.Defconfig, "test_defconfig"},
		{"arch", in.Arch, "amd64"},
		{"ipa.commit", in.IPA.Commit, f.ipaHead},
		{"ipa.ref", in.IPA.Ref, "master"},
		{"requirements.ref", in.Requirements.Ref, "v1.0"},
		{"builderImage.id", in.BuilderImage.ID, tenv.imageID},
		{"sourceDateEpoch", strconv.FormatInt(in.SourceDateEpoch, 10), strconv.FormatInt(f.ipaTime, 10)},
		{"outputs[0].sha256", bi.Outputs[0].SHA256, "sha256:" + sha256hex(kernel)},
		{"outputs[1].sha256", bi.Outputs[1].SHA256, "sha256:" + sha256hex(initrd)},
		{"outputs[1].size", strconv.FormatInt(bi.Outputs[1].Size, 10), strconv.Itoa(len(initrd))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("build-info %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(in.Requirements.Commit) != 40 {
		t.Errorf("requirements commit %q not resolved", in.Requirements.Commit)
	}
	var compact bytes.Buffer
	json.Compact(&compact, bi.ShowInfo)
	if !bytes.Contains(compact.Bytes(), []byte(`"standin":{"type":"target"`)) {
		t.Errorf("build-info showInfo = %s, want the stand-in's show-info", bi.ShowInfo)
	}

	// Logs: streamed line by line with the phase, and in OUTPUT/build.log.
	buildLog := string(mustRead(t, filepath.Join(out1, BuildLogName)))
	for _, want := range []string{
		"[fetch] standin: configured test_defconfig in /ipa/output",
		"[fetch] >>> standin 1.0 Downloading",
		"[build] >>> standin 1.0 Building",
		"[build] standin: images written to /ipa/output/images",
	} {
		if !strings.Contains(buildLog, want) {
			t.Errorf("build.log lacks %q", want)
		}
	}
	if !strings.Contains(f.logBuf.String(), `msg=">>> standin 1.0 Building" phase=build`) {
		t.Errorf("logrus output lacks the streamed build line with phase=build")
	}

	// Mounts: fixed paths, trees read-only, outputs writable; the download cache is writable
	// only in the fetch phase, the host's git mirrors and stamps in neither.
	for _, want := range []string{
		"MOUNT fetch /ipa/buildroot ro", "MOUNT fetch /ipa/external ro", "MOUNT fetch /ipa/output rw",
		"MOUNT fetch /ipa/dl rw", "MOUNT fetch /ipa/dl/ipa-oci-git ro", "MOUNT fetch /ipa/dl/.ipa-oci-fetch ro",
		"WRITE fetch /ipa/external denied", "WRITE fetch /ipa/output ok", "WRITE fetch /ipa/dl ok",
		"WRITE fetch /ipa/dl/ipa-oci-git denied", "WRITE fetch /ipa/dl/.ipa-oci-fetch denied",
		"MOUNT build /ipa/buildroot ro", "MOUNT build /ipa/external ro", "MOUNT build /ipa/output rw",
		"MOUNT build /ipa/dl ro", "MOUNT build /ipa/ccache rw",
		"WRITE build /ipa/external denied", "WRITE build /ipa/output ok", "WRITE build /ipa/ccache ok",
		"WRITE build /ipa/dl denied", "WRITE build /ipa/dl/ipa-oci-git denied",
	} {
		if !strings.Contains(buildLog, want+"\n") {
			t.Errorf("build.log lacks %q (mounts)", want)
		}
	}
	if strings.Contains(buildLog, "MOUNT fetch /ipa/ccache") {
		t.Error("the fetch phase has the ccache directory mounted")
	}

	// Environment allow-list: proxies pass, nothing else from the host.
	wantUID := os.Getuid()
	if wantUID == 0 {
		wantUID = 1000
	}
	if want := "FETCH-ENV secret=unset proxy=http://proxy.invalid:3128 uid=" + strconv.Itoa(wantUID); !strings.Contains(buildLog, want) {
		t.Errorf("build.log lacks %q", want)
	}
	env := string(mustRead(t, filepath.Join(out1, "buildroot", "build", "standin-env.txt")))
	for _, want := range []string{"http_proxy=http://proxy.invalid:3128\n", "no_proxy=127.0.0.1,localhost\n",
		"SOURCE_DATE_EPOCH=1700000000\n", "IPA_OCI_IPA_COMMIT=" + f.ipaHead + "\n", "BR2_DL_DIR=/ipa/dl\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("container environment lacks %q", strings.TrimSpace(want))
		}
	}
	// The resolved commits reach Buildroot as command-line overrides of the Kconfig strings.
	for _, want := range []string{"BR2_IPA_GIT_REF=" + f.ipaHead, "BR2_IPA_GIT_URL=" + f.ipaRepo,
		"BR2_IPA_REQUIREMENTS_GIT_REF=v1.0", "BR2_IPA_REQUIREMENTS_GIT_URL=" + f.reqRepo} {
		if !strings.Contains(env, want) {
			t.Errorf("make in the container did not get %s", want)
		}
	}
	if strings.Contains(env, "hunter2") || strings.Contains(env, "IPA_OCI_TEST_SECRET") {
		t.Errorf("host secret leaked into the container environment")
	}

	// A second build into another output directory with the warm download cache: the fetch
	// phase is skipped (stamp keyed by inputs) and every digest is identical.
	out2 := filepath.Join(f.dir, "out2")
	res2, err := Build(ctx, f.options(out2))
	if err != nil {
		t.Fatalf("second build: %v\nlog:\n%s", err, f.logBuf)
	}
	if !res2.FetchSkipped {
		t.Error("second build with warm caches re-ran the fetch phase")
	}
	if log2 := string(mustRead(t, filepath.Join(out2, BuildLogName))); strings.Contains(log2, "[fetch]") {
		t.Error("second build.log has fetch phase lines")
	}
	for _, name := range []string{KernelName, InitramfsName, BuildInfoName} {
		a, b := sha256hex(mustRead(t, filepath.Join(out1, name))), sha256hex(mustRead(t, filepath.Join(out2, name)))
		if a != b {
			t.Errorf("%s differs between two builds: %s vs %s", name, a, b)
		}
	}
	if n := tenv.brHits.get("/standin-src-1.0.tar"); n != 1 {
		t.Errorf("stand-in source downloaded %d times, want 1 (download cache)", n)
	}

	// Offline with everything cached works (no network anywhere).
	o := f.options(filepath.Join(f.dir, "out3"))
	o.Offline = true
	res3, err := Build(ctx, o)
	if err != nil {
		t.Fatalf("offline build with warm caches: %v", err)
	}
	if res3.Info.Outputs[1].SHA256 != bi.Outputs[1].SHA256 {
		t.Errorf("offline build initramfs %s, want %s", res3.Info.Outputs[1].SHA256, bi.Outputs[1].SHA256)
	}
	for _, out := range []string{out1, out2, o.Output} {
		assertNoContainers(t, out)
	}
}

func TestBuildAsNonRootUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another uid; as a normal user TestBuildStandin checks the invoking uid")
	}
	f := newFixture(t)
	out := filepath.Join(f.dir, "out")
	o := f.options(out)
	o.User = "1234:1234"
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, f.logBuf)
	}
	for _, p := range []string{
		filepath.Join(out, "buildroot", "images", "bzImage"), // written in the container
		filepath.Join(out, "buildroot", ".config"),
		filepath.Join(out, KernelName), // written by ipa-oci on the host
		filepath.Join(out, InitramfsName),
		filepath.Join(out, BuildInfoName),
		filepath.Join(out, BuildLogName),
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 1234 {
			t.Errorf("%s owned by %d:%d, want 1234:1234", p, st.Uid, st.Gid)
		}
	}
	if got := strings.TrimSpace(string(mustRead(t, filepath.Join(out, "buildroot", "build", "standin-uid.txt")))); got != "1234" {
		t.Errorf("container ran as uid %s, want 1234", got)
	}
}

func TestBuildPhaseHasNoNetwork(t *testing.T) {
	f := newFixture(t)
	o := f.options(filepath.Join(f.dir, "out"))
	// Offline skips the fetch phase, so the build phase itself must download the stand-in
	// source from the test server, which the host (and the fetch phase) can reach.
	o.Offline = true
	o.IPA, o.Requirements = GitSource{}, GitSource{}
	o.SourceDateEpoch = 1700000000
	o.Buildroot = BuildrootConfig{Src: tenv.standin}
	_, err := Build(context.Background(), o)
	if err == nil {
		t.Fatal("offline build with an empty download cache succeeded")
	}
	var ce *ContainerExitError
	if !errors.As(err, &ce) || ce.Code != exitMissingSource || ce.Phase != "build" {
		t.Fatalf("error %v, want build phase exit %d", err, exitMissingSource)
	}
	if !strings.Contains(err.Error(), "source is missing from the download cache") || !errors.Is(err, ErrOffline) || strings.Contains(strings.Split(err.Error(), "\n")[0], "--offline") {
		t.Errorf("error does not explain the missing source: %v", err)
	}
	// The download was attempted and failed for lack of network (connection refused on the
	// container's own loopback), not for a server problem: the server is up and answers the host.
	if !strings.Contains(err.Error(), "standin: download of "+tenv.srcURL+" failed") {
		t.Errorf("last log lines lack the failed download: %v", err)
	}
	logText := string(mustRead(t, filepath.Join(o.Output, BuildLogName)))
	if !strings.Contains(logText, "Connection refused") {
		t.Errorf("build.log lacks wget's connection error:\n%s", logText)
	}
	resp, herr := tenv.srv.Client().Get(tenv.srcURL)
	if herr != nil || resp.StatusCode != 200 {
		t.Fatalf("test server not reachable from the host: %v", herr)
	}
	resp.Body.Close()
}

func TestBuildFailureShowsExitCodeAndLastLines(t *testing.T) {
	f := newFixture(t, "STANDIN_FAIL=3")
	out := filepath.Join(f.dir, "out")
	_, err := Build(context.Background(), f.options(out))
	var ce *ContainerExitError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a ContainerExitError", err)
	}
	if ce.Phase != "build" || ce.Code != 2 {
		// make exits 2 when a recipe fails, whatever the recipe's own code.
		t.Errorf("phase %s code %d, want build 2", ce.Phase, ce.Code)
	}
	if !strings.Contains(err.Error(), "standin: build failed on purpose (STANDIN_FAIL=3)") {
		t.Errorf("error lacks the last log lines: %v", err)
	}
	assertNoContainers(t, out)
}

func TestBuildCancelRemovesContainer(t *testing.T) {
	f := newFixture(t, "STANDIN_SLEEP=300")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sleeping := make(chan struct{})
	var once bool
	f.log.AddHook(hookFunc(func(e *logrus.Entry) {
		if !once && strings.Contains(e.Message, "standin: sleeping") {
			once = true
			close(sleeping)
		}
	}))
	out := filepath.Join(f.dir, "out")
	errc := make(chan error, 1)
	go func() { _, err := Build(ctx, f.options(out)); errc <- err }()
	select {
	case <-sleeping:
	case err := <-errc:
		t.Fatalf("build ended before it slept: %v\n%s", err, f.logBuf)
	}
	if n := countContainers(t, out); n != 1 {
		t.Errorf("%d running builder containers for this build, want 1", n)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if n := countContainers(t, out); n != 0 {
		t.Errorf("%d builder containers left after cancellation", n)
	}
}

func TestBuilderPin(t *testing.T) {
	f := newFixture(t)
	o := f.options(filepath.Join(f.dir, "out"))
	o.BuilderImage = tenv.imageTag
	o.BuilderPin = "sha256:" + strings.Repeat("0", 64)
	_, err := Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "pins sha256:000") || !errors.Is(err, ErrBuilderImagePin) || strings.Contains(err.Error(), "--builder-image") {
		t.Fatalf("error %v, want a pin mismatch", err)
	}
	if _, err := os.Stat(o.Output); err == nil {
		t.Error("a refused build created the output directory")
	}
	o.BuilderPin = ""
	if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "not pinned") {
		t.Fatalf("error %v, want 'not pinned'", err)
	}
	// --builder-image overrides the pin and records the ID used.
	o.BuilderPin = "sha256:" + strings.Repeat("0", 64)
	o.AllowUnpinned = true
	o.LegalInfo = true // and --legal-info while at it
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Info.Inputs.BuilderImage; got.ID != tenv.imageID || got.Ref != tenv.imageTag {
		t.Errorf("recorded builder image %+v", got)
	}
	li := res.Info.Output(LegalInfoName)
	if li == nil || !res.Info.Inputs.LegalInfo {
		t.Fatalf("build-info lacks the legal-info output: %+v", res.Info.Outputs)
	}
	data := mustRead(t, filepath.Join(o.Output, LegalInfoName))
	if li.SHA256 != "sha256:"+sha256hex(data) {
		t.Errorf("legal-info digest %s does not match the file", li.SHA256)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if h.ModTime.Unix() != res.Info.Inputs.SourceDateEpoch || h.Uid != 0 {
			t.Errorf("%s: mtime %v uid %d, want SOURCE_DATE_EPOCH and 0", h.Name, h.ModTime, h.Uid)
		}
	}
	want := "legal-info/ legal-info/manifest.csv legal-info/sources/ legal-info/sources/standin-1.0/ legal-info/sources/standin-1.0/standin-src-1.0.tar"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("legal-info.tar.gz entries:\n got %s\nwant %s", got, want)
	}
}

func TestBuildrootTarballCache(t *testing.T) {
	needEnv(t)
	cache := t.TempDir()
	log := logrus.New()
	before := tenv.brHits.get("/buildroot-standin-1.0.tar.gz")
	tree, err := fetchBuildroot(context.Background(), cache, tenv.brURL, tenv.brSHA, false, log)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := TreeHash(tree); h != mustTreeHash(t, tenv.standin) {
		t.Errorf("extracted tree differs from testdata/buildroot-standin")
	}
	if _, err := fetchBuildroot(context.Background(), cache, tenv.brURL, tenv.brSHA, true, log); err != nil {
		t.Errorf("offline fetch from the cache: %v", err)
	}
	if n := tenv.brHits.get("/buildroot-standin-1.0.tar.gz") - before; n != 1 {
		t.Errorf("tarball downloaded %d times, want 1", n)
	}
	bad := strings.Repeat("ab", 32)
	_, err = fetchBuildroot(context.Background(), cache, tenv.brURL, bad, false, log)
	if err == nil || !strings.Contains(err.Error(), "sha256 is "+tenv.brSHA+", want "+bad) {
		t.Errorf("wrong sha256: error %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "buildroot", bad, "buildroot-standin-1.0.tar.gz")); err == nil {
		t.Error("an unverified download was kept in the cache")
	}
	if _, err := fetchBuildroot(context.Background(), t.TempDir(), tenv.brURL, tenv.brSHA, true, log); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("offline with empty cache: %v", err)
	}
	// file:// works as well.
	p := filepath.Join(t.TempDir(), "br.tar.gz")
	b, _ := tarGzDir(tenv.standin, "br")
	os.WriteFile(p, b, 0o644)
	if _, err := fetchBuildroot(context.Background(), t.TempDir(), "file://"+p, sha256hex(b), false, log); err != nil {
		t.Errorf("file:// url: %v", err)
	}
}

func TestLsRemote(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := newGitRunner(nil)
	for _, ref := range []string{"master", "v1.0", "refs/heads/master", f.ipaHead} {
		got, err := g.lsRemote(ctx, f.ipaRepo, ref)
		if err != nil || got != f.ipaHead {
			t.Errorf("lsRemote(%s) = %s, %v; want %s", ref, got, err, f.ipaHead)
		}
	}
	if _, err := g.lsRemote(ctx, f.ipaRepo, "nope"); err == nil || !strings.Contains(err.Error(), "no such branch or tag") {
		t.Errorf("missing ref: %v", err)
	}
}

type hookFunc func(*logrus.Entry)

func (h hookFunc) Levels() []logrus.Level { return logrus.AllLevels }
func (h hookFunc) Fire(e *logrus.Entry) error {
	h(e)
	return nil
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustTreeHash(t testing.TB, p string) string {
	h, err := TreeHash(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// countContainers counts ipa-oci containers (any state) labelled with output dir out (other
// test packages may be running builds at the same time, so always filter by output).
func countContainers(t testing.TB, out string) int {
	t.Helper()
	f := make(client.Filters).Add("label", LabelOutput+"="+out)
	res, err := tenv.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Items)
}

func assertNoContainers(t testing.TB, out string) {
	t.Helper()
	// Removal is synchronous in runContainer; give the engine no slack.
	if n := countContainers(t, out); n != 0 {
		t.Errorf("%d ipa-oci containers left behind", n)
	}
}
