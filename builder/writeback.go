package builder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/sirupsen/logrus"
)

// Writing a saved configuration back. The external tree and the kernel config directory are
// mounted read-only in every container, also for `ipa-oci make savedefconfig`: instead, make
// is told (on its command line) to save into a scratch directory, OUTPUT/ipa-oci-writeback,
// mounted read-write at ContainerWriteBack, and when make exits 0 the host copies the saved
// file into its tree. So a container never gets write access to the trees (a package's build
// or a post-build script cannot rewrite post-build.sh or plant files in the checkout), and the
// host takes back one regular file of bounded size, atomically, from where it told make to
// write, nothing else.

// ContainerWriteBack is where make saves configuration files ipa-oci writes back.
const ContainerWriteBack = "/ipa/writeback"

// writeBackDirName is the host directory behind ContainerWriteBack, in OUTPUT.
const writeBackDirName = "ipa-oci-writeback"

// maxConfigSize bounds a configuration file taken back from a container (a Linux .config is
// about 100-300 kB).
const maxConfigSize = 4 << 20

// writeBackTarget describes a make target that saves a configuration file.
type writeBackTarget struct {
	// symbol is the defconfig symbol naming the file (BR2_DEFCONFIG: the defconfig itself).
	symbol string
	// makeVar is the make variable Buildroot writes the file to; ipa-oci points it at the
	// scratch directory.
	makeVar string
	// seed: the target updates an existing file (Buildroot compares its time stamp with the
	// package's .config), so the scratch copy starts as a copy of the host file, time stamp
	// included.
	seed bool
	// then is a target ipa-oci runs after this one to write the file (linux-savedefconfig
	// saves into the kernel's build directory only; linux-update-defconfig copies it out).
	then string
}

// WriteBackTargets are the make targets whose saved configuration ipa-oci writes back into
// the host's trees, and what they write.
var writeBackTargets = map[string]writeBackTarget{
	"savedefconfig":          {symbol: "BR2_DEFCONFIG", makeVar: "BR2_DEFCONFIG"},
	"update-defconfig":       {symbol: "BR2_DEFCONFIG", makeVar: "BR2_DEFCONFIG"},
	"linux-update-defconfig": {symbol: "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE", makeVar: "LINUX_KCONFIG_FILE", seed: true},
	"linux-update-config":    {symbol: "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE", makeVar: "LINUX_KCONFIG_FILE", seed: true},
	"linux-savedefconfig":    {symbol: "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE", makeVar: "LINUX_KCONFIG_FILE", seed: true, then: "linux-update-defconfig"},
	"busybox-update-config":  {symbol: "BR2_PACKAGE_BUSYBOX_CONFIG", makeVar: "BUSYBOX_KCONFIG_FILE", seed: true},
}

// WriteBackTargetNames lists writeBackTargets, for help texts.
const WriteBackTargetNames = "savedefconfig (update-defconfig), linux-update-defconfig, linux-update-config, linux-savedefconfig, busybox-update-config"

// writeBack is one planned write-back.
type writeBack struct {
	target  string
	makeVar string
	host    string // the host file it replaces
	stage   string // the file in the scratch directory, relative to it
	seed    bool
}

// planWriteBacks finds the write-back targets in targets, the host file each one writes, and
// returns the targets to run (linux-savedefconfig gains linux-update-defconfig). A target
// that would write somewhere ipa-oci cannot write back (Buildroot's own tree, a file the
// defconfig does not name) is refused before anything runs.
func (b *build) planWriteBacks(targets []string) ([]*writeBack, []string, error) {
	var plan []*writeBack
	byVar := map[string]*writeBack{}
	var out []string
	for _, t := range targets {
		out = append(out, t)
		wt, ok := writeBackTargets[t]
		if !ok {
			if strings.HasSuffix(t, "-update-config") || strings.HasSuffix(t, "-update-defconfig") {
				return nil, nil, fmt.Errorf("make %s: ipa-oci does not know where %s saves its configuration, and the trees are read-only in the container: it writes back %s (or save it inside `ipa-oci shell` and copy it out of %s)", t, t, WriteBackTargetNames, b.brOut())
			}
			continue
		}
		if wt.then != "" && !slices.Contains(targets, wt.then) {
			out = append(out, wt.then)
		}
		if byVar[wt.makeVar] != nil {
			continue
		}
		host, err := b.writeBackPath(t, wt)
		if err != nil {
			return nil, nil, err
		}
		wb := &writeBack{target: t, makeVar: wt.makeVar, host: host, seed: wt.seed,
			stage: strings.ToLower(wt.makeVar) + "/" + filepath.Base(host)}
		byVar[wt.makeVar] = wb
		plan = append(plan, wb)
	}
	return plan, out, nil
}

// writeBackPath is the host file target t saves: the defconfig for savedefconfig, else the
// file the defconfig names with wt.symbol, mapped from its container path (where
// $(BR2_EXTERNAL_*_PATH) is /ipa/external) to the host's external tree or kernel config
// directory. The defconfig is read from the host's external tree, never from O=: the
// container writes O=, and the host does not take paths from it.
func (b *build) writeBackPath(t string, wt writeBackTarget) (string, error) {
	o := b.o
	if wt.symbol == "BR2_DEFCONFIG" {
		return o.defconfigPath(), nil
	}
	val, err := defconfigValue(o.defconfigPath(), wt.symbol)
	if err != nil {
		return "", err
	}
	if val == "" {
		if wt.symbol == "BR2_PACKAGE_BUSYBOX_CONFIG" {
			return "", fmt.Errorf("make %s: %s does not set BR2_PACKAGE_BUSYBOX_CONFIG, so BusyBox uses Buildroot's own package/busybox/busybox.config, which is not yours to write: to carry a BusyBox configuration, copy that file into the external tree (e.g. board/ipa/busybox.config), set BR2_PACKAGE_BUSYBOX_CONFIG=\"$(BR2_EXTERNAL_IPA_PATH)/board/ipa/busybox.config\" in the defconfig, then run %s again", t, o.defconfigPath(), t)
		}
		return "", fmt.Errorf("make %s: %s does not set %s, so there is no configuration file to write back (a kernel configured from a defconfig rule or fragments cannot be saved this way)", t, o.defconfigPath(), wt.symbol)
	}
	cpath, err := expandContainerPath(val)
	if err != nil {
		return "", fmt.Errorf("make %s: %s=%q in %s: %w", t, wt.symbol, val, o.defconfigPath(), err)
	}
	for _, m := range []struct{ container, host, what string }{
		{ContainerKernelConfig, o.KernelConfig, "kernelConfig"},
		{ContainerExternal, o.External, "external"},
	} {
		rel, err := filepath.Rel(m.container, cpath)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if m.host == "" {
			return "", errkind.Mark(ErrNeedsKernelConfig, "make %s: %s names %s, in the kernel config directory, but no kernel config directory is set: set kernelConfig in %s", t, wt.symbol, cpath, o.configName())
		}
		return filepath.Join(m.host, rel), nil
	}
	return "", fmt.Errorf("make %s: %s is %s, outside the external tree (%s) and the kernel config directory (%s): ipa-oci writes back only into those", t, wt.symbol, cpath, ContainerExternal, ContainerKernelConfig)
}

var (
	externalPathRE = regexp.MustCompile(`\$\(BR2_EXTERNAL_[A-Za-z0-9_]+_PATH\)|\$\{BR2_EXTERNAL_[A-Za-z0-9_]+_PATH\}`)
	makeRefRE      = regexp.MustCompile(`\$[({]`)
)

// expandContainerPath resolves a path from a defconfig as Buildroot sees it in the container.
func expandContainerPath(v string) (string, error) {
	v = externalPathRE.ReplaceAllString(v, ContainerExternal)
	v = strings.NewReplacer("$(TOPDIR)", ContainerBuildroot, "$(BR2_EXTERNAL)", ContainerExternal).Replace(v)
	if makeRefRE.MatchString(v) {
		return "", errors.New("ipa-oci resolves only $(BR2_EXTERNAL_<NAME>_PATH) and $(TOPDIR) in it")
	}
	if !filepath.IsAbs(v) {
		v = filepath.Join(ContainerBuildroot, v) // Buildroot resolves relative paths in its tree
	}
	return filepath.Clean(v), nil
}

// defconfigValue returns the value of symbol in a defconfig (quotes removed), or "".
func defconfigValue(path, symbol string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	val := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), symbol+"="); ok {
			val = strings.Trim(v, `"`)
		}
	}
	return val, sc.Err()
}

// stageWriteBacks creates a fresh OUTPUT/ipa-oci-writeback for the plan, with the seed copies
// (content and time stamp of the host file), writable by the container user.
func (b *build) stageWriteBacks(plan []*writeBack) (string, error) {
	dir := filepath.Join(b.o.Output, writeBackDirName)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	b.ownForContainer(dir)
	for _, wb := range plan {
		sub := filepath.Join(dir, filepath.Dir(wb.stage))
		if err := os.Mkdir(sub, 0o755); err != nil {
			return "", err
		}
		b.ownForContainer(sub)
		if !wb.seed {
			continue
		}
		fi, err := os.Stat(wb.host)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(wb.host)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, wb.stage)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return "", err
		}
		if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
			return "", err
		}
		b.ownForContainer(p)
	}
	return dir, nil
}

// copyBack takes the file make saved for wb out of the scratch directory (through an os.Root:
// a regular file, at most maxConfigSize, no symlink followed) and writes it over the host
// file atomically, keeping the host file's leading comment block, with the saved file's time
// stamp (Buildroot keeps a saved kernel config no newer than the .config it came from).
func (b *build) copyBack(wb *writeBack) (WrittenBack, error) {
	w := WrittenBack{Target: wb.target, Path: wb.host}
	root, err := os.OpenRoot(filepath.Join(b.o.Output, writeBackDirName))
	if err != nil {
		return w, err
	}
	defer root.Close()
	f, err := openRegular(root, wb.stage)
	if errors.Is(err, fs.ErrNotExist) {
		return w, fmt.Errorf("make %s succeeded but saved no %s: nothing written back to %s", wb.target, filepath.Base(wb.host), wb.host)
	}
	if err != nil {
		return w, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return w, err
	}
	saved, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return w, err
	}
	if len(saved) > maxConfigSize || bytes.IndexByte(saved, 0) >= 0 {
		return w, fmt.Errorf("make %s saved a %s that is not a configuration file (over %d bytes, or binary): not written back", wb.target, filepath.Base(wb.host), maxConfigSize)
	}
	old, err := os.ReadFile(wb.host)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w, err
	}
	saved = KeepHeader(old, saved)
	if old != nil && bytes.Equal(old, saved) {
		b.log.WithFields(logrus.Fields{"target": wb.target, "file": wb.host}).Info("configuration unchanged")
		return w, nil
	}
	oldInfo, statErr := os.Stat(wb.host)
	if err := fsutil.WriteFileAtomic(wb.host, saved); err != nil {
		return w, fmt.Errorf("write back %s: %w", wb.host, err)
	}
	os.Chtimes(wb.host, fi.ModTime(), fi.ModTime())
	if st, ok := statOf(oldInfo, statErr); ok && os.Geteuid() == 0 && st.Uid != 0 {
		// root wrote a file of the checkout's owner: it stays theirs.
		os.Lchown(wb.host, int(st.Uid), int(st.Gid))
	}
	w.Changed = true
	b.log.WithFields(logrus.Fields{"target": wb.target, "file": wb.host}).Info("configuration written back")
	return w, nil
}

var notSetRE = regexp.MustCompile(`^# [A-Za-z0-9_]+ is not set$`)

// KeepHeader returns saved with the leading comment block of old (its first lines that are
// comments, up to the first symbol or blank line; "# X is not set" lines are symbols) in
// front, unless saved already starts with it. Kconfig's savedefconfig writes no comments,
// while the configuration files of a project usually start with a few lines saying what they
// are: those survive a save. Comments further down do not (as with Buildroot).
func KeepHeader(old, saved []byte) []byte {
	var hdr []byte
	for _, line := range strings.SplitAfter(string(old), "\n") {
		t := strings.TrimRight(line, "\n")
		if !strings.HasPrefix(t, "#") || notSetRE.MatchString(t) {
			break
		}
		hdr = append(hdr, t+"\n"...)
	}
	if len(hdr) == 0 || bytes.HasPrefix(saved, hdr) {
		return saved
	}
	return append(hdr, saved...)
}

func statOf(fi os.FileInfo, err error) (*syscall.Stat_t, bool) {
	if err != nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}
