package builder

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/moby/moby/api/types/mount"
	"github.com/sirupsen/logrus"
)

// LabelCommand names the ipa-oci command a container runs for: make or shell (phase
// containers of a build do not carry it).
const LabelCommand = "org.ipa-oci.command"

// MakeOptions say what `ipa-oci make` runs.
type MakeOptions struct {
	// Targets are make targets, in order (menuconfig, savedefconfig, linux-menuconfig,
	// <pkg>-rebuild, source, ...).
	Targets []string
	// Vars are NAME=VALUE make variables for this make only (V=1), checked like
	// Options.MakeArgs and not recorded anywhere.
	Vars []string
	// Silent passes -s to make.
	Silent bool
	Stdio  Stdio
}

// MakeResult says what Make did.
type MakeResult struct {
	// Phase is the container make ran in: "build" (network off, O= is OUTPUT/buildroot) or
	// "fetch" (downloading targets: network on, a scratch O=).
	Phase string
	// Written are the configuration files written back into the host's trees.
	Written []WrittenBack
}

// WrittenBack is a configuration file a make target saved and ipa-oci copied into the host's
// tree (the external tree's defconfig, the kernel config).
type WrittenBack struct {
	Target  string // the make target, e.g. savedefconfig
	Path    string // the host file
	Changed bool   // false: the saved file equals the one there, which was left as it was
}

// Make runs Buildroot's make with targets in the builder container, with exactly the mounts,
// user, environment allow-list, hardening, make variables (the lock's commits and wheel list,
// --make-arg) and O= of a build:
//
//   - Targets that download (DownloadsTarget: source, *-source) run as the fetch phase does:
//     network on, the download cache writable, a fresh scratch O= configured from the
//     defconfig (the build's O= is never seen by a container with network).
//   - Every other target runs as the build phase does: no network, the download cache
//     read-only, O= = OUTPUT/buildroot, configured from the defconfig first when it has no
//     .config yet. A missing source is not downloaded: make fails, and the error says to run
//     the package's -source target first.
//
// Targets that save a configuration (savedefconfig, linux-update-defconfig,
// linux-update-config, linux-savedefconfig, busybox-update-config) write into a scratch
// directory instead (BR2_DEFCONFIG, LINUX_KCONFIG_FILE, BUSYBOX_KCONFIG_FILE on make's command
// line); when make succeeds, ipa-oci copies the file into the host's tree, where the
// defconfig says it lives (writeback.go). The external tree and the kernel config directory
// stay read-only to the container.
func Make(ctx context.Context, o Options, m MakeOptions) (*MakeResult, error) {
	if err := CheckMakeTargets(m.Targets); err != nil {
		return nil, err
	}
	if err := CheckMakeArgs("make variable", m.Vars); err != nil {
		return nil, err
	}
	fetchSide, err := downloadSide(m.Targets)
	if err != nil {
		return nil, err
	}
	b, err := newBuild(ctx, o, false)
	if err != nil {
		return nil, err
	}
	if b.closeDocker {
		defer b.cli.Close()
	}
	targets := append([]string(nil), m.Targets...)
	var plan []*writeBack
	if !fetchSide {
		if plan, targets, err = b.planWriteBacks(targets); err != nil {
			return nil, err
		}
	}
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	res := &MakeResult{Phase: "build"}
	network, mounts := networkNone, b.buildMounts()
	vars := append([]string(nil), m.Vars...)
	if fetchSide {
		res.Phase = "fetch"
		if network, err = b.fetchNetwork(ctx); err != nil {
			return nil, err
		}
		scratch, err := b.freshScratch()
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(scratch)
		mounts = b.fetchMounts(scratch)
	}
	if len(plan) > 0 {
		stage, err := b.stageWriteBacks(plan)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(stage)
		mounts = append(mounts, bind(stage, ContainerWriteBack, false))
		for _, wb := range plan {
			vars = append(vars, wb.makeVar+"="+ContainerWriteBack+"/"+wb.stage)
		}
	}
	script := b.makeScript(fetchSide, m.Silent, vars, targets)
	b.log.WithFields(logrus.Fields{"phase": res.Phase, "network": network, "targets": strings.Join(m.Targets, " ")}).Info("make in the builder container")
	watch := newMakeWatch()
	code, err := b.attached(ctx, "make", res.Phase, network, mounts, makeWorkDir, []string{"/bin/bash", "-c", script}, m.Stdio, watch)
	watch.Close()
	if err != nil {
		return nil, err
	}
	if code != 0 {
		if fetchSide {
			if werr := b.wheelHashError(&watch.hash, nil); werr != nil {
				return nil, werr
			}
		}
		return nil, &ExitError{What: "make", Code: code, Hint: watch.hint(fetchSide)}
	}
	for _, wb := range plan {
		w, err := b.copyBack(wb)
		if err != nil {
			return nil, err
		}
		res.Written = append(res.Written, w)
	}
	return res, nil
}

// makeWorkDir is the working directory of `ipa-oci make` containers, as of the phases'.
const makeWorkDir = "/ipa"

// makeScript configures O= when needed and runs make with vars and targets.
func (b *build) makeScript(fetchSide, silent bool, vars, targets []string) string {
	m := b.makeCmd()
	line := m
	if silent {
		line += " -s"
	}
	for _, v := range vars {
		line += " " + shellQuote(v)
	}
	for _, t := range targets {
		line += " " + shellQuote(t)
	}
	lines := []string{"set -euo pipefail"}
	switch {
	case fetchSide: // a fresh scratch O= every time, as in the fetch phase
		lines = append(lines, m+" "+shellQuote(b.o.Defconfig)+" >/dev/null")
	case needsConfig(targets):
		lines = append(lines, "if [ ! -e "+ContainerOutput+"/.config ]; then",
			"  echo "+shellQuote("ipa-oci: "+ContainerOutput+" has no .config yet: make "+b.o.Defconfig+" first")+" >&2",
			"  "+m+" "+shellQuote(b.o.Defconfig)+" >/dev/null",
			"fi")
	}
	return strings.Join(append(lines, "exec "+line), "\n")
}

// prepare does what every container of a build needs first: check the builder image, clean
// (build --clean), create the directories, resolve the inputs, write the lock's files.
func (b *build) prepare(ctx context.Context) error {
	if err := b.checkBuilderImage(ctx); err != nil {
		return err
	}
	if b.o.Clean {
		if err := b.clean(ctx); err != nil {
			return err
		}
	}
	if err := b.prepareDirs(); err != nil {
		return err
	}
	if err := b.resolveInputs(ctx); err != nil {
		return err
	}
	return b.writeLockFiles()
}

// attached runs one container of `ipa-oci make` or `ipa-oci shell` for phase ("build" or
// "fetch": its environment, IPA_OCI_PHASE included, is that phase's) with the user's terminal
// or stdio attached.
func (b *build) attached(ctx context.Context, command, phase, network string, mounts []mount.Mount, workDir string, cmd []string, sio Stdio, watch io.Writer) (int64, error) {
	return runAttached(ctx, b.cli, b.spec(command, phase, network, mounts, cmd), workDir, sio, watch)
}

// makeTargetRE is a make target ipa-oci passes: Buildroot's (menuconfig, linux-rebuild,
// host-python3-source, ipa_x86_64_defconfig, ...) are all of this form.
var makeTargetRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+/%-]*$`)

// CheckMakeTargets checks `ipa-oci make`'s targets: at least one, each a plain target name
// (make options and variables are refused: VAR=VALUE goes to MakeOptions.Vars).
func CheckMakeTargets(targets []string) error {
	if len(targets) == 0 {
		return errors.New("no make target: name one, e.g. `ipa-oci make menuconfig` (see `ipa-oci make help`)")
	}
	for _, t := range targets {
		switch {
		case strings.HasPrefix(t, "-"):
			return errkind.Mark(ErrMakeOption, "make option %q: only targets and VAR=VALUE are passed to make, e.g. V=1 for verbose output", t)
		case strings.Contains(t, "="):
			return fmt.Errorf("%q is a variable, not a target", t)
		case !makeTargetRE.MatchString(t):
			return fmt.Errorf("make target %q: letters, digits and _ . + / %% - only", t)
		}
	}
	return nil
}

// DownloadsTarget says whether a make target downloads sources and so runs with the fetch
// phase's network and writable download cache: `source` and every `*-source` target
// (linux-source, host-python3-source, ...). Everything else runs with the network off.
func DownloadsTarget(t string) bool { return t == "source" || strings.HasSuffix(t, "-source") }

// downloadSide says whether targets run as the fetch phase; a mix of downloading and other
// targets is refused (they need different containers).
func downloadSide(targets []string) (bool, error) {
	var dl, other []string
	for _, t := range targets {
		if DownloadsTarget(t) {
			dl = append(dl, t)
		} else {
			other = append(other, t)
		}
	}
	if len(dl) > 0 && len(other) > 0 {
		return false, fmt.Errorf("%s download (network on, a scratch O=) and %s run in the build container (network off): run them as two `ipa-oci make` commands, the download first",
			strings.Join(dl, " "), strings.Join(other, " "))
	}
	return len(dl) > 0, nil
}

// noConfigTargets need no .config in O= (or make one themselves).
var noConfigTargets = regexp.MustCompile(`^(help|list-defconfigs|clean|distclean|print-version|manual.*|.*_defconfig|defconfig|all.*config|rand.*config)$`)

// needsConfig says whether O= must be configured before targets run.
func needsConfig(targets []string) bool {
	for _, t := range targets {
		if noConfigTargets.MatchString(t) {
			return false
		}
	}
	return true
}

// makeWatch reads what make prints (for hints; the user sees it unchanged): Buildroot's
// hash-check refusals (a locked wheel that changed) and its ">>> pkg version Downloading"
// step lines.
type makeWatch struct {
	w    *io.PipeWriter
	done chan struct{}
	hash hashWatch
	mu   sync.Mutex
	dl   string // the last package that started downloading
}

var downloadingRE = regexp.MustCompile(`^>>> (\S+) (\S+) Downloading`)

func newMakeWatch() *makeWatch {
	pr, pw := io.Pipe()
	mw := &makeWatch{w: pw, done: make(chan struct{})}
	go func() {
		defer close(mw.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			l := cleanLine(sc.Text())
			mw.hash.line(l)
			if m := downloadingRE.FindStringSubmatch(l); m != nil {
				mw.mu.Lock()
				mw.dl = m[1] + " " + m[2]
				mw.mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr)
	}()
	return mw
}

func (mw *makeWatch) Write(p []byte) (int, error) { return mw.w.Write(p) }

// Close ends the watch and waits until every line was read.
func (mw *makeWatch) Close() { mw.w.Close(); <-mw.done }

// hint explains a failed make that tried to download in the build container.
func (mw *makeWatch) hint(fetchSide bool) string {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if fetchSide || mw.dl == "" {
		return ""
	}
	pkg, _, _ := strings.Cut(mw.dl, " ")
	return fmt.Sprintf("%s needed a download, and this container has no network and a read-only download cache: run `ipa-oci make %s-source` (or `ipa-oci make source`) first", mw.dl, pkg)
}
