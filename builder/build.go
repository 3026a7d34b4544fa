package builder

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// Fixed in-container paths: the same O= and download paths on every host, so Buildroot's
// BR2_REPRODUCIBLE sees identical paths and outputs do not depend on where the host keeps them.
const (
	ContainerBuildroot    = "/ipa/buildroot"     // Buildroot tree, read-only
	ContainerExternal     = "/ipa/external"      // BR2_EXTERNAL tree, read-only
	ContainerKernelConfig = "/ipa/kernel-config" // kernel config directory, read-only
	ContainerOutput       = "/ipa/output"        // Buildroot's O= (host: OUTPUT/buildroot)
	ContainerDL           = "/ipa/dl"            // BR2_DL_DIR, shared download cache
	ContainerCcache       = "/ipa/ccache"        // ccache directory (BR_CACHE_DIR)
)

// Artifact names in OUTPUT.
const (
	KernelName    = "ironic-python-agent.kernel"
	InitramfsName = "ironic-python-agent.initramfs"
	BuildInfoName = "build-info.json"
	BuildLogName  = "build.log"
	LegalInfoName = "legal-info.tar.gz"
	ShowInfoName  = "show-info.json"
)

// exitMissingSource is the build-phase script's exit code when `make source` fails with the
// network off: a source is missing from the download cache.
const exitMissingSource = 97

// rootFallbackUser is the container user when root invokes a build: never root inside.
const rootFallbackUser = "1000:1000"

// proxyVars are the only host environment variables passed into the builder container.
var proxyVars = []string{"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"}

// Options are the inputs of one build; see Config for their meaning. Paths are host paths.
type Options struct {
	Buildroot       BuildrootConfig
	External        string
	KernelConfig    string
	Defconfig       string
	Arch            string
	IPA             GitSource
	Requirements    GitSource
	Jobs            int
	Output          string
	DLDir           string
	CcacheDir       string
	CacheDir        string // Buildroot tarball cache (default ${IPA_OCI_CACHE:-~/.cache/ipa-oci})
	SourceDateEpoch int64  // 0: the IPA commit's committer time
	Offline         bool   // skip the fetch phase; fail if a source is missing
	LegalInfo       bool   // also run `make legal-info` and write OUTPUT/legal-info.tar.gz

	// BuilderImage is the image to run; BuilderPin the image ID it must have. With
	// AllowUnpinned (--builder-image) any image is accepted and its ID recorded.
	BuilderImage  string
	BuilderPin    string
	AllowUnpinned bool

	// User is uid:gid in the container. Empty: the invoking user, or 1000:1000 when that is
	// root. When set while running as root, the host-written artifacts are chowned to it too.
	User string

	// HostEnv is the environment proxies are taken from (default os.Environ()).
	HostEnv []string
	// ForceFetch runs the fetch phase even when its stamp says the inputs were fetched.
	ForceFetch bool

	Log      logrus.FieldLogger
	Progress io.Writer        // a terminal for the package progress line, or nil
	Docker   client.APIClient // default: NewDockerClient
}

// Result is what a build produced.
type Result struct {
	Info          *BuildInfo
	Kernel        string
	Initramfs     string
	BuildInfoPath string
	LegalInfo     string
	BuildLog      string
	FetchSkipped  bool
	stats         []runStats
}

// DefaultCacheDir is ${IPA_OCI_CACHE:-$HOME/.cache/ipa-oci}.
func DefaultCacheDir() string {
	if d := os.Getenv("IPA_OCI_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ipa-oci")
	}
	return filepath.Join(os.TempDir(), "ipa-oci-cache")
}

// Build runs the fetch phase (unless skipped) and the build phase in the builder container
// and writes the artifacts and build-info.json into opts.Output.
func Build(ctx context.Context, opts Options) (*Result, error) {
	b, err := newBuild(ctx, opts)
	if err != nil {
		return nil, err
	}
	if b.closeDocker {
		defer b.cli.Close()
	}
	return b.run(ctx)
}

type build struct {
	o           Options
	log         logrus.FieldLogger
	cli         client.APIClient
	closeDocker bool
	uid, gid    int
	chownOut    bool
	id          string
	brTree      string
	info        BuildInfo
	sink        *logSink
	res         Result
}

func newBuild(ctx context.Context, o Options) (*build, error) {
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	arch, err := NormalizeArch(o.Arch)
	if err != nil {
		return nil, err
	}
	o.Arch = arch
	if o.Defconfig == "" {
		o.Defconfig = DefaultDefconfig(arch)
	}
	if !strings.HasSuffix(o.Defconfig, "_defconfig") {
		o.Defconfig += "_defconfig"
	}
	if o.Output == "" {
		return nil, errors.New("no output directory: pass --output DIR")
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir()
	}
	if o.DLDir == "" {
		o.DLDir = filepath.Join(o.CacheDir, "dl")
	}
	if o.CcacheDir == "" {
		o.CcacheDir = filepath.Join(o.CacheDir, "ccache")
	}
	if o.HostEnv == nil {
		o.HostEnv = os.Environ()
	}
	for _, p := range []*string{&o.External, &o.KernelConfig, &o.Output, &o.DLDir, &o.CcacheDir, &o.CacheDir, &o.Buildroot.Src} {
		if *p != "" {
			a, err := filepath.Abs(*p)
			if err != nil {
				return nil, err
			}
			*p = a
		}
	}
	if fi, err := os.Stat(filepath.Join(o.External, "configs", o.Defconfig)); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("defconfig %s not found in %s/configs: check --external and --defconfig", o.Defconfig, o.External)
	}
	b := &build{o: o, log: o.Log.WithField("component", "build")}
	if b.uid, b.gid, b.chownOut, err = containerUser(o.User); err != nil {
		return nil, err
	}
	rnd := make([]byte, 6)
	rand.Read(rnd)
	b.id = hex.EncodeToString(rnd)
	b.cli = o.Docker
	if b.cli == nil {
		c, err := NewDockerClient(ctx)
		if err != nil {
			return nil, err
		}
		b.cli, b.closeDocker = c, true
	}
	return b, nil
}

// containerUser returns the container uid:gid and whether host-written files get chowned.
func containerUser(user string) (uid, gid int, chown bool, err error) {
	if user == "" {
		uid, gid = os.Getuid(), os.Getgid()
		if uid == 0 {
			user = rootFallbackUser
		} else {
			return uid, gid, false, nil
		}
	} else {
		chown = os.Geteuid() == 0
	}
	u, g, ok := strings.Cut(user, ":")
	if !ok {
		g = u
	}
	if uid, err = strconv.Atoi(u); err == nil {
		gid, err = strconv.Atoi(g)
	}
	if err != nil || uid < 0 || gid < 0 {
		return 0, 0, false, fmt.Errorf("--user %q: use numeric UID:GID", user)
	}
	if uid == 0 {
		return 0, 0, false, errors.New("--user 0: the builder container never runs as root; pick a non-root UID:GID")
	}
	return uid, gid, chown && uid != os.Geteuid(), nil
}

func (b *build) run(ctx context.Context) (*Result, error) {
	o := b.o
	if err := b.checkBuilderImage(ctx); err != nil {
		return nil, err
	}
	if err := b.resolveInputs(ctx); err != nil {
		return nil, err
	}
	brOut := filepath.Join(o.Output, "buildroot")
	for _, d := range []string{o.Output, brOut, o.DLDir, o.CcacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
		b.ownForContainer(d, false)
	}
	logPath := filepath.Join(o.Output, BuildLogName)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create build log: %w", err)
	}
	defer logFile.Close()
	b.res.BuildLog = logPath
	progress := newProgressLine(o.Progress)
	defer progress.done()
	b.sink = &logSink{log: o.Log, file: logFile, progress: progress}

	stamp := filepath.Join(o.DLDir, ".ipa-oci-fetch", b.fetchKey())
	_, stampErr := os.Stat(stamp)
	switch {
	case o.Offline:
		b.log.Info("offline: fetch phase skipped; every source must already be in the download cache")
		b.res.FetchSkipped = true
	case stampErr == nil && !o.ForceFetch:
		b.log.WithField("stamp", stamp).Info("fetch phase skipped: these inputs were fetched before")
		b.res.FetchSkipped = true
	default:
		if err := b.phase(ctx, "fetch", "host", b.fetchScript()); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(stamp), 0o755); err == nil {
			os.WriteFile(stamp, []byte(b.fetchKeyText()), 0o644)
			b.ownForContainer(filepath.Dir(stamp), true)
		}
	}
	if err := b.phase(ctx, "build", "none", b.buildScript()); err != nil {
		var ce *ContainerExitError
		if errors.As(err, &ce) && ce.Code == exitMissingSource {
			hint := "run without --offline so the fetch phase downloads it"
			if !o.Offline {
				hint = "run again with --force-fetch (the fetch stamp under " + filepath.Dir(stamp) + " is stale)"
			}
			return nil, fmt.Errorf("a source is missing from the download cache %s and the build phase has no network: %s\n%w", o.DLDir, hint, err)
		}
		return nil, err
	}
	if err := b.collect(brOut); err != nil {
		return nil, err
	}
	return &b.res, nil
}

// checkBuilderImage resolves the builder image and enforces the pin.
func (b *build) checkBuilderImage(ctx context.Context) error {
	o := b.o
	ref := o.BuilderImage
	if ref == "" {
		ref = o.BuilderPin
	}
	if ref == "" {
		return errors.New("no builder image: run `ipa-oci builder build` and pin the printed ID as builder.id in " + ConfigFileName + ", or pass --builder-image")
	}
	ii, err := b.cli.ImageInspect(ctx, ref)
	if err != nil {
		return fmt.Errorf("builder image %s: %w; build it with `ipa-oci builder build`", ref, err)
	}
	id := ii.ID
	if !o.AllowUnpinned {
		if o.BuilderPin == "" {
			return fmt.Errorf("builder image %s (%s) is not pinned: set builder.id: %s in %s, or pass --builder-image to use it unpinned", ref, id, id, ConfigFileName)
		}
		if !matchesPin(id, ii.RepoDigests, o.BuilderPin) {
			return fmt.Errorf("builder image %s is %s but %s pins %s: rebuild the pinned image, update builder.id, or pass --builder-image %s to override", ref, id, ConfigFileName, o.BuilderPin, ref)
		}
	} else if o.BuilderPin != "" && !matchesPin(id, ii.RepoDigests, o.BuilderPin) {
		b.log.WithFields(logrus.Fields{"image": ref, "id": id, "pin": o.BuilderPin}).Warn("--builder-image overrides the pinned builder image")
	}
	b.info.Inputs.BuilderImage = ImageInput{Ref: ref, ID: id}
	b.log.WithFields(logrus.Fields{"image": ref, "id": id}).Info("builder image")
	return nil
}

func matchesPin(id string, repoDigests []string, pin string) bool {
	if pin == id || "sha256:"+pin == id {
		return true
	}
	for _, rd := range repoDigests {
		if _, d, ok := strings.Cut(rd, "@"); ok && (d == pin || strings.HasSuffix(pin, "@"+d)) {
			return true
		}
	}
	return false
}

// resolveInputs hashes the trees, fetches/caches Buildroot and resolves the git refs.
func (b *build) resolveInputs(ctx context.Context) error {
	o := b.o
	in := &b.info.Inputs
	in.Defconfig, in.Arch, in.LegalInfo = o.Defconfig, o.Arch, o.LegalInfo
	if o.Buildroot.Src != "" {
		b.brTree = o.Buildroot.Src
		in.Buildroot = BuildrootInput{Version: o.Buildroot.Version, Local: true}
	} else {
		if o.Buildroot.URL == "" || o.Buildroot.SHA256 == "" {
			return errors.New("no Buildroot: set buildroot.url and buildroot.sha256 in " + ConfigFileName + " or pass --buildroot-src DIR")
		}
		tree, err := fetchBuildroot(ctx, o.CacheDir, o.Buildroot.URL, o.Buildroot.SHA256, o.Offline, b.log)
		if err != nil {
			return err
		}
		b.brTree = tree
		in.Buildroot = BuildrootInput{Version: o.Buildroot.Version, URL: o.Buildroot.URL,
			SHA256: strings.ToLower(strings.TrimPrefix(o.Buildroot.SHA256, "sha256:"))}
	}
	var err error
	if in.Buildroot.TreeSHA256, err = TreeHash(b.brTree); err != nil {
		return err
	}
	h, err := TreeHash(o.External)
	if err != nil {
		return err
	}
	in.External = TreeInput{SHA256: h}
	if o.KernelConfig != "" {
		h, err := TreeHash(o.KernelConfig)
		if err != nil {
			return err
		}
		in.KernelConfig = &TreeInput{SHA256: h}
	}
	for _, g := range []struct {
		src GitSource
		dst **ResolvedGit
	}{{o.IPA, &in.IPA}, {o.Requirements, &in.Requirements}} {
		if g.src.Repo == "" {
			continue
		}
		ref := g.src.Ref
		if ref == "" {
			ref = "HEAD"
		}
		dir := filepath.Join(o.DLDir, "ipa-oci-git", mirrorName(g.src.Repo))
		var commit string
		if o.Offline {
			commit, err = resolveOffline(ctx, dir, g.src.Repo, ref)
		} else {
			commit, err = lsRemote(ctx, g.src.Repo, ref)
		}
		if err != nil {
			return err
		}
		t, err := ensureCommit(ctx, dir, g.src.Repo, ref, commit, o.Offline)
		if err != nil {
			return err
		}
		b.ownForContainer(filepath.Join(o.DLDir, "ipa-oci-git"), false)
		b.ownForContainer(dir, true)
		*g.dst = &ResolvedGit{Repo: g.src.Repo, Ref: ref, Commit: commit, CommitTime: t}
		b.log.WithFields(logrus.Fields{"repo": g.src.Repo, "ref": ref, "commit": commit}).Info("resolved git ref")
	}
	in.SourceDateEpoch = o.SourceDateEpoch
	if in.SourceDateEpoch == 0 {
		if in.IPA == nil {
			return errors.New("no SOURCE_DATE_EPOCH: set ipa.repo (its commit time is the default) or sourceDateEpoch / --source-date-epoch")
		}
		in.SourceDateEpoch = in.IPA.CommitTime
	}
	return nil
}

// fetchKeyText lists the inputs that decide which sources the fetch phase downloads.
func (b *build) fetchKeyText() string {
	in := b.info.Inputs
	var sb strings.Builder
	fmt.Fprintf(&sb, "buildroot %s\nexternal %s\ndefconfig %s\narch %s\nbuilder %s\n",
		in.Buildroot.TreeSHA256, in.External.SHA256, in.Defconfig, in.Arch, in.BuilderImage.ID)
	if in.KernelConfig != nil {
		fmt.Fprintf(&sb, "kernel-config %s\n", in.KernelConfig.SHA256)
	}
	for _, g := range []*ResolvedGit{in.IPA, in.Requirements} {
		if g != nil {
			fmt.Fprintf(&sb, "git %s %s\n", g.Repo, g.Commit)
		}
	}
	return sb.String()
}

func (b *build) fetchKey() string {
	h := sha256.Sum256([]byte(b.fetchKeyText()))
	return hex.EncodeToString(h[:])
}

// makeCmd is the make invocation both phases use. The resolved git inputs override the
// external tree's Kconfig strings on the command line (so Buildroot fetches and builds exactly
// the recorded IPA commit): BR2_IPA_GIT_URL, BR2_IPA_GIT_REF (the commit ID),
// BR2_IPA_REQUIREMENTS_GIT_URL and BR2_IPA_REQUIREMENTS_GIT_REF (the ref as given, which the
// external tree's post-build script compares with the ref its wheel list was generated for).
func (b *build) makeCmd() string {
	cmd := fmt.Sprintf("make --no-print-directory -C %s O=%s BR2_EXTERNAL=%s", ContainerBuildroot, ContainerOutput, ContainerExternal)
	for _, v := range b.makeVars() {
		cmd += " " + shellQuote(v)
	}
	return cmd
}

func (b *build) makeVars() []string {
	in := b.info.Inputs
	var vars []string
	if in.IPA != nil {
		vars = append(vars, "BR2_IPA_GIT_URL="+in.IPA.Repo, "BR2_IPA_GIT_REF="+in.IPA.Commit)
	}
	if in.Requirements != nil {
		vars = append(vars, "BR2_IPA_REQUIREMENTS_GIT_URL="+in.Requirements.Repo, "BR2_IPA_REQUIREMENTS_GIT_REF="+in.Requirements.Ref)
	}
	return vars
}

func (b *build) fetchScript() string {
	m := b.makeCmd()
	return strings.Join([]string{
		"set -euo pipefail",
		m + " " + shellQuote(b.o.Defconfig),
		m + " source",
		"if [ -x " + ContainerExternal + "/ipa-oci-fetch.sh ]; then " + ContainerExternal + "/ipa-oci-fetch.sh; fi",
	}, "\n")
}

func (b *build) buildScript() string {
	m := b.makeCmd()
	jobs := ""
	if b.o.Jobs > 0 {
		jobs = fmt.Sprintf(" BR2_JLEVEL=%d", b.o.Jobs)
	}
	lines := []string{
		"set -euo pipefail",
		m + " " + shellQuote(b.o.Defconfig),
		"if ! " + m + " source; then echo 'ipa-oci: a source is missing from " + ContainerDL + " and the network is off' >&2; exit " + strconv.Itoa(exitMissingSource) + "; fi",
		m + jobs + " all",
		m + " -s show-info > " + ContainerOutput + "/" + ShowInfoName,
	}
	if b.o.LegalInfo {
		lines = append(lines, "rm -rf "+ContainerOutput+"/legal-info", m+" legal-info")
	}
	return strings.Join(lines, "\n")
}

// env is the container environment: what ipa-oci sets plus the host's proxy variables.
func (b *build) env(phase string) []string {
	in := b.info.Inputs
	env := []string{
		"HOME=/tmp",
		"LC_ALL=C.UTF-8",
		"LANG=C.UTF-8",
		"TERM=dumb",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(in.SourceDateEpoch, 10),
		"BR2_DL_DIR=" + ContainerDL,
		"BR_CACHE_DIR=" + ContainerCcache,
		"IPA_OCI_PHASE=" + phase,
		"IPA_OCI_ARCH=" + in.Arch,
		"IPA_OCI_UNAME_ARCH=" + unameArch(in.Arch),
		// The git mirrors are written by the host user; let git read them as another uid.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*",
	}
	if in.KernelConfig != nil {
		env = append(env, "IPA_OCI_KERNEL_CONFIG_DIR="+ContainerKernelConfig)
	}
	for name, g := range map[string]*ResolvedGit{"IPA": in.IPA, "REQUIREMENTS": in.Requirements} {
		if g == nil {
			continue
		}
		env = append(env,
			"IPA_OCI_"+name+"_URL="+g.Repo,
			"IPA_OCI_"+name+"_COMMIT="+g.Commit,
			"IPA_OCI_"+name+"_GIT_DIR="+ContainerDL+"/ipa-oci-git/"+mirrorName(g.Repo),
		)
	}
	for _, kv := range b.o.HostEnv {
		k, _, _ := strings.Cut(kv, "=")
		for _, p := range proxyVars {
			if k == p || k == strings.ToUpper(p) {
				env = append(env, kv)
			}
		}
	}
	return env
}

func (b *build) mounts() []mount.Mount {
	o := b.o
	bind := func(src, dst string, ro bool) mount.Mount {
		return mount.Mount{Type: mount.TypeBind, Source: src, Target: dst, ReadOnly: ro}
	}
	ms := []mount.Mount{
		bind(b.brTree, ContainerBuildroot, true),
		bind(o.External, ContainerExternal, true),
		bind(filepath.Join(o.Output, "buildroot"), ContainerOutput, false),
		bind(o.DLDir, ContainerDL, false),
		bind(o.CcacheDir, ContainerCcache, false),
	}
	if o.KernelConfig != "" {
		ms = append(ms, bind(o.KernelConfig, ContainerKernelConfig, true))
	}
	return ms
}

func (b *build) phase(ctx context.Context, phase, network, script string) error {
	b.log.WithFields(logrus.Fields{"phase": phase, "network": network}).Info("starting phase")
	st, err := runContainer(ctx, b.cli, runSpec{
		phase:   phase,
		image:   b.info.Inputs.BuilderImage.ID,
		cmd:     []string{"/bin/bash", "-c", script},
		env:     b.env(phase),
		user:    fmt.Sprintf("%d:%d", b.uid, b.gid),
		mounts:  b.mounts(),
		network: network,
		labels: map[string]string{
			LabelManaged: "true", LabelPhase: phase, LabelBuildID: b.id,
			LabelOutput: b.o.Output,
		},
	}, b.sink)
	b.sink.progress.clear()
	b.res.stats = append(b.res.stats, st)
	return err
}

// ownForContainer hands a host-created directory to the container user when the host runs as
// root and the container does not (so the container can write there).
func (b *build) ownForContainer(p string, recursive bool) {
	if os.Geteuid() != 0 || b.uid == 0 {
		return
	}
	if !recursive {
		os.Lchown(p, b.uid, b.gid)
		return
	}
	filepath.WalkDir(p, func(q string, _ os.DirEntry, err error) error {
		if err == nil {
			os.Lchown(q, b.uid, b.gid)
		}
		return nil
	})
}

// collect copies the artifacts out of Buildroot's images/, hashes them and writes build-info.
func (b *build) collect(brOut string) error {
	o := b.o
	images := filepath.Join(brOut, "images")
	kernel := firstExisting(images, "bzImage", "Image", "vmlinuz", "zImage")
	initrd := firstExisting(images, "rootfs.cpio.xz", "rootfs.cpio.zst", "rootfs.cpio.gz", "rootfs.cpio")
	if kernel == "" || initrd == "" {
		return fmt.Errorf("build finished but %s lacks a kernel (bzImage/Image) or rootfs.cpio.*: check the defconfig enables BR2_LINUX_KERNEL and BR2_TARGET_ROOTFS_CPIO", images)
	}
	type art struct{ src, name string }
	arts := []art{{kernel, KernelName}, {initrd, InitramfsName}}
	if o.LegalInfo {
		tmp := filepath.Join(o.Output, "."+LegalInfoName+".tmp")
		if err := tarDir(filepath.Join(brOut, "legal-info"), tmp, b.info.Inputs.SourceDateEpoch); err != nil {
			return err
		}
		arts = append(arts, art{tmp, LegalInfoName})
	}
	for _, a := range arts {
		dst := filepath.Join(o.Output, a.name)
		if err := copyFile(a.src, dst); err != nil {
			return err
		}
		if strings.HasSuffix(a.src, ".tmp") {
			os.Remove(a.src)
		}
		sum, err := fileSHA256(dst)
		if err != nil {
			return err
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return err
		}
		b.info.Outputs = append(b.info.Outputs, OutputFile{Name: a.name, SHA256: "sha256:" + sum, Size: fi.Size()})
		b.chownArtifact(dst)
	}
	b.res.Kernel = filepath.Join(o.Output, KernelName)
	b.res.Initramfs = filepath.Join(o.Output, InitramfsName)
	if o.LegalInfo {
		b.res.LegalInfo = filepath.Join(o.Output, LegalInfoName)
	}
	si, err := os.ReadFile(filepath.Join(brOut, ShowInfoName))
	if err != nil {
		return fmt.Errorf("read Buildroot show-info: %w", err)
	}
	if !json.Valid(si) {
		return fmt.Errorf("Buildroot's make show-info wrote invalid JSON to %s", filepath.Join(brOut, ShowInfoName))
	}
	b.info.ShowInfo = json.RawMessage(strings.TrimSpace(string(si)))
	b.info.SchemaVersion = BuildInfoSchemaVersion
	out, err := json.MarshalIndent(b.info, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(o.Output, BuildInfoName)
	if err := writeFileAtomic(p, append(out, '\n')); err != nil {
		return err
	}
	b.chownArtifact(p)
	b.chownArtifact(b.res.BuildLog)
	b.res.BuildInfoPath = p
	b.res.Info = &b.info
	for _, f := range b.info.Outputs {
		b.log.WithFields(logrus.Fields{"file": f.Name, "digest": f.SHA256, "size": f.Size}).Info("artifact")
	}
	return nil
}

func (b *build) chownArtifact(p string) {
	if b.chownOut {
		os.Lchown(p, b.uid, b.gid)
	}
}

func firstExisting(dir string, names ...string) string {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy artifact: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func writeFileAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// NormalizeArch maps an architecture to its OCI name: amd64 (also x86_64, the default) or
// arm64 (also aarch64).
func NormalizeArch(a string) (string, error) {
	switch a {
	case "", "amd64", "x86_64":
		return "amd64", nil
	case "arm64", "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("architecture %q: use amd64 (x86_64) or arm64 (aarch64)", a)
}

// DefaultDefconfig is the defconfig used when none is given: ipa_x86_64_defconfig or
// ipa_aarch64_defconfig from buildroot-external/configs.
func DefaultDefconfig(arch string) string { return "ipa_" + unameArch(arch) + "_defconfig" }

func unameArch(a string) string {
	if a == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
