package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ipa-oci/ipa-oci/internal/arches"
	"github.com/ipa-oci/ipa-oci/internal/cachedir"
	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// A build runs in four steps, one file each: inputs.go (pin the builder image, hash the trees,
// resolve the git refs), fetch.go (the fetch phase: network on, writes the download cache),
// buildphase.go (the build phase: network off, download cache read-only) and outputs.go (copy
// the artifacts out of Buildroot's O= and write build-info.json). container.go says what every
// phase container gets (mounts, environment), run.go runs one (hardened) container, git.go is
// the host-side git, sources.go and download.go fetch and hash the Buildroot release.

// Fixed in-container paths: the same O= and download paths on every host, so Buildroot's
// BR2_REPRODUCIBLE sees identical paths and outputs do not depend on where the host keeps them.
const (
	ContainerBuildroot    = "/ipa/buildroot"     // Buildroot tree, read-only
	ContainerExternal     = "/ipa/external"      // BR2_EXTERNAL tree, read-only
	ContainerKernelConfig = "/ipa/kernel-config" // kernel config directory, read-only
	ContainerOutput       = "/ipa/output"        // Buildroot's O= (build: OUTPUT/buildroot; fetch: a scratch directory)
	ContainerDL           = "/ipa/dl"            // BR2_DL_DIR: read-write in the fetch phase, read-only in the build phase
	ContainerCcache       = "/ipa/ccache"        // ccache directory (BR_CACHE_DIR), build phase only
	ContainerLock         = "/ipa/lock"          // files generated from the lock (the wheel list), read-only
)

// The wheel list a build hands to Buildroot, generated from the lock into OUTPUT/ipa-oci-lock
// (mounted at ContainerLock) and named on make's command line as WheelsMkVar.
const (
	WheelsMkVar    = "IPA_OCI_WHEELS_MK"
	WheelsMkName   = "ironic-python-agent-wheels.mk"
	WheelsHashName = "ironic-python-agent-wheels.hash"
	lockDirName    = "ipa-oci-lock"
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

// rootFallbackUser is the container user when root invokes a build: never root inside.
const rootFallbackUser = "1000:1000"

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
	CacheDir        string // Buildroot tarball cache (default internal/cachedir.Dir: $IPA_OCI_CACHE, $XDG_CACHE_HOME/ipa-oci or ~/.cache/ipa-oci)
	SourceDateEpoch int64  // 0: the IPA commit's committer time
	Offline         bool   // skip the fetch phase; fail if a source is missing
	LegalInfo       bool   // also run `make legal-info` and write OUTPUT/legal-info.tar.gz

	// HostNetwork runs the fetch phase in the host's network namespace instead of the engine's
	// default (bridge) network. Needed when the engine has no bridge (dockerd --bridge=none).
	HostNetwork bool

	// BuilderImage is the image to run; BuilderPin the image ID it must have. With
	// AllowUnpinned (--builder-image) any image is accepted and its ID recorded.
	BuilderImage  string
	BuilderPin    string
	AllowUnpinned bool

	// User is uid:gid in the container. Empty: the invoking user, or 1000:1000 when that is
	// root. When set while running as root, the host-written artifacts are chowned to it too.
	User string

	// PythonIndex is the PEP 503 index ResolveLock resolves the agent's wheels against
	// (default DefaultPythonIndex). Builds take the wheel URLs from Lock instead.
	PythonIndex string

	// Lock, when set, is where the build takes every input that would otherwise float: the
	// Buildroot release (or a local tree's hash, which o.Buildroot.Src must match), the IPA and
	// requirements commits, SOURCE_DATE_EPOCH, the builder image ID (unless --builder-image)
	// and the wheel list handed to Buildroot. Nil: the inputs are resolved as given and
	// Buildroot gets no wheel list.
	Lock *Lock

	// HostEnv is the environment proxies are taken from (default os.Environ()); host-side git
	// also takes its allow-list (gitEnvAllow) from it.
	HostEnv []string
	// Env names more host environment variables (taken from HostEnv) every container gets on
	// top of the proxy variables (--env NAME); build-info records each name with the sha256 of
	// its value (CheckEnvNames says which names are refused).
	Env []string
	// MakeArgs are NAME=VALUE make variables added to every make call (--make-arg), recorded
	// in build-info (CheckMakeArgs says which are refused).
	MakeArgs []string
	// Clean removes the output tree (Clean) before building; the download and ccache
	// directories stay.
	Clean bool

	// ConfigFile and LockFile are the configuration and lock files actually used (as the user
	// named them), so messages name them; empty: ipa-oci.yaml / ipa-oci.lock.
	ConfigFile string
	LockFile   string
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

// Build runs the fetch phase (unless skipped) and the build phase in the builder container
// and writes the artifacts and build-info.json into opts.Output.
func Build(ctx context.Context, opts Options) (*Result, error) {
	b, err := newBuild(ctx, opts, false)
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
	git         *gitRunner
	info        BuildInfo
	sink        *logSink
	res         Result
	locking     bool   // ResolveLock: an unpinned builder.image is accepted (the lock pins it)
	lockDir     string // OUTPUT/ipa-oci-lock when the lock hands Buildroot a wheel list
	wheelsKey   string // sha256 of that wheel list, part of the fetch stamp's key
}

// newBuild checks and completes o. locking: for ResolveLock, which needs no output
// directory or defconfig.
func newBuild(ctx context.Context, o Options, locking bool) (*build, error) {
	if err := o.normalize(!locking); err != nil {
		return nil, err
	}
	if o.Lock != nil && !locking {
		if err := applyLock(&o); err != nil {
			return nil, err
		}
	}
	b := &build{o: o, log: o.Log.WithField("component", "build"), git: newGitRunner(o.HostEnv), locking: locking}
	var err error
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

// normalize fills o's defaults, makes its paths absolute and checks what needs no engine:
// the architecture, the make arguments and environment names, and (needDefconfig) that the
// output directory is set and the defconfig exists.
func (o *Options) normalize(needDefconfig bool) error {
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	arch, err := arches.Normalize(o.Arch)
	if err != nil {
		return err
	}
	o.Arch = arch
	if o.Defconfig == "" {
		o.Defconfig = DefaultDefconfig(arch)
	}
	if !strings.HasSuffix(o.Defconfig, "_defconfig") {
		o.Defconfig += "_defconfig"
	}
	if o.Output == "" && needDefconfig {
		return errkind.Mark(ErrNoOutput, "no output directory: set output in %s", o.configName())
	}
	if o.CacheDir == "" {
		d, err := cachedir.Dir()
		if err != nil {
			return err
		}
		o.CacheDir = d
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
				return err
			}
			*p = a
		}
	}
	if err := CheckMakeArgs("make argument", o.MakeArgs); err != nil {
		return err
	}
	if err := CheckEnvNames("environment variable", o.Env, o.HostEnv); err != nil {
		return err
	}
	if fi, err := os.Stat(o.defconfigPath()); needDefconfig && (err != nil || !fi.Mode().IsRegular()) {
		return errkind.Mark(ErrDefconfigNotFound, "defconfig %s not found in %s/configs: check external and defconfig in %s", o.Defconfig, o.External, o.configName())
	}
	return nil
}

// defconfigPath is the host path of the defconfig the build configures Buildroot with.
func (o *Options) defconfigPath() string { return filepath.Join(o.External, "configs", o.Defconfig) }

// configName and lockName name the configuration and lock files in messages: the files
// actually used, or their default names.
func (o *Options) configName() string { return orDefault(o.ConfigFile, ConfigFileName) }
func (o *Options) lockName() string   { return orDefault(o.LockFile, LockFileName) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
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
		return 0, 0, false, errkind.Mark(ErrUser, "container user %q: use numeric UID:GID", user)
	}
	if uid == 0 {
		return 0, 0, false, errkind.Mark(ErrUser, "container user 0: the builder container never runs as root; pick a non-root UID:GID")
	}
	return uid, gid, chown && uid != os.Geteuid(), nil
}

func (b *build) run(ctx context.Context) (*Result, error) {
	o := b.o
	if err := b.prepare(ctx); err != nil {
		return nil, err
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

	if err := b.fetch(ctx); err != nil {
		return nil, err
	}
	if err := b.buildPhase(ctx); err != nil {
		return nil, err
	}
	if err := b.collect(); err != nil {
		return nil, err
	}
	return &b.res, nil
}

// prepareDirs creates the host directories a build uses before any git command or container
// runs. The directories the host itself writes and later reads (git mirrors, fetch stamps)
// are created here, owned by the host user, and only ever mounted read-only.
func (b *build) prepareDirs() error {
	o := b.o
	for _, d := range []string{o.Output, b.brOut(), o.DLDir, o.CcacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		b.ownForContainer(d)
	}
	for _, d := range []string{b.mirrorsDir(), b.stampsDir()} {
		if err := hostOwnedDir(d); err != nil {
			return err
		}
	}
	return nil
}

// brOut is the host directory behind the build phase's O=.
func (b *build) brOut() string { return filepath.Join(b.o.Output, "buildroot") }

// ownForContainer hands a host-created directory (not its content) to the container user
// when the host runs as root and the container does not, so the container can write there.
func (b *build) ownForContainer(p string) {
	if os.Geteuid() != 0 || b.uid == 0 {
		return
	}
	os.Lchown(p, b.uid, b.gid)
}

// hostOwnedDir makes sure p is a real directory (not a symlink) owned by the user running
// ipa-oci, creating it (0755) if missing. The host later runs git in, or writes stamps to,
// such directories, so one a container could have created or replaced is refused.
func hostOwnedDir(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o755); err != nil { // whatever the umask: the container reads it
			return err
		}
		fi, err = os.Lstat(p)
	}
	if err != nil {
		return err
	}
	return checkHostOwned(p, fi)
}

// checkHostOwned refuses a path that is a symlink, not a directory, or owned by another user.
func checkHostOwned(p string, fi os.FileInfo) error {
	if !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is not a directory (%s): remove it; ipa-oci recreates it", p, fi.Mode().Type())
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by the user running ipa-oci (uid %d); a builder container (or an older ipa-oci, which handed it to the container user) may have written it: remove it, ipa-oci fetches its content again", p, uid, os.Geteuid())
	}
	return nil
}

// fileOwner is the owning uid of fi, where the platform says.
func fileOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// DefaultDefconfig is the defconfig used when none is given: ipa_x86_64_defconfig or
// ipa_aarch64_defconfig from buildroot-external/configs.
func DefaultDefconfig(arch string) string { return "ipa_" + arches.Uname(arch) + "_defconfig" }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
