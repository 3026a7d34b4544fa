package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/sirupsen/logrus"
)

// applyLock takes every pinned input of o from o.Lock.
func applyLock(o *Options) error {
	l := o.Lock
	if err := l.Validate(); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if l.Buildroot.TreeSHA256 != "" {
		if o.Buildroot.Src == "" {
			return errkind.Mark(ErrNeedsBuildrootSrc, "%s pins a local Buildroot tree (treeSha256 %s): set buildroot.src to that tree", o.lockName(), l.Buildroot.TreeSHA256)
		}
		o.Buildroot = BuildrootConfig{Src: o.Buildroot.Src, Version: l.Buildroot.Version}
	} else {
		o.Buildroot = BuildrootConfig{URL: l.Buildroot.URL, SHA256: l.Buildroot.SHA256, Version: l.Buildroot.Version}
	}
	o.IPA, o.Requirements = GitSource{}, GitSource{}
	if l.IPA != nil {
		o.IPA = GitSource{Repo: l.IPA.Repo, Ref: l.IPA.Ref, Commit: l.IPA.Commit}
	}
	if l.Requirements != nil {
		o.Requirements = GitSource{Repo: l.Requirements.Repo, Ref: l.Requirements.Ref, Commit: l.Requirements.Commit}
	}
	o.SourceDateEpoch = l.SourceDateEpoch
	if !o.AllowUnpinned {
		o.BuilderImage = l.BuilderImage // the locked image by ID, whatever builder.image's tag points to now
	}
	return nil
}

// writeLockFiles records the lock in build-info and, when it has a wheel closure, writes the
// wheel list for Buildroot into the host-owned OUTPUT/ipa-oci-lock (mounted read-only).
func (b *build) writeLockFiles() error {
	l := b.o.Lock
	if l == nil {
		return nil
	}
	b.info.Lock = l
	if l.Buildroot.TreeSHA256 != "" && l.Buildroot.TreeSHA256 != b.info.Inputs.Buildroot.TreeSHA256 {
		return fmt.Errorf("Buildroot tree %s hashes to %s but %s pins %s: check out the locked tree, or run `ipa-oci lock`", b.brTree, b.info.Inputs.Buildroot.TreeSHA256, b.o.lockName(), l.Buildroot.TreeSHA256)
	}
	if l.Python == nil {
		return nil
	}
	dir := filepath.Join(b.o.Output, lockDirName)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := hostOwnedDir(dir); err != nil {
		return err
	}
	if err := l.WriteWheelList(dir, b.o.Arch, ContainerLock); err != nil {
		return fmt.Errorf("write the wheel list: %w", err)
	}
	h := sha256.New()
	for _, w := range l.WheelsFor(b.o.Arch) {
		fmt.Fprintf(h, "%s %s\n", w.URL, w.SHA256)
	}
	b.lockDir, b.wheelsKey = dir, hex.EncodeToString(h.Sum(nil))
	b.log.WithFields(logrus.Fields{"arch": b.o.Arch, "wheels": len(l.WheelsFor(b.o.Arch))}).Info("wheel list from " + b.o.lockName())
	return nil
}

// Check compares the lock with the configuration o (ipa-oci.yaml merged with flags) and
// returns a *LockMismatchError naming the first field that no longer matches: the Buildroot
// release (or local tree), the git repositories, refs and pinned commits, builder.id,
// sourceDateEpoch, pythonIndex, and the python-* Buildroot packages of the external tree.
func (l *Lock) Check(o Options) error {
	mismatch := func(field, config, locked string) error {
		return &LockMismatchError{Field: field, Config: config, Locked: locked, ConfigFile: o.ConfigFile, LockFile: o.LockFile}
	}
	br := l.Buildroot
	if o.Buildroot.Src != "" {
		h, err := TreeHash(o.Buildroot.Src)
		if err != nil {
			return err
		}
		if br.TreeSHA256 != h {
			return mismatch("buildroot.src", o.Buildroot.Src+" (tree sha256 "+h+")", orTree(br))
		}
	} else {
		if br.TreeSHA256 != "" || o.Buildroot.URL != br.URL {
			return mismatch("buildroot.url", o.Buildroot.URL, orTree(br))
		}
		if s := strings.ToLower(strings.TrimPrefix(o.Buildroot.SHA256, "sha256:")); s != br.SHA256 {
			return mismatch("buildroot.sha256", s, br.SHA256)
		}
	}
	if o.Buildroot.Version != br.Version {
		return mismatch("buildroot.version", o.Buildroot.Version, br.Version)
	}
	for _, g := range []struct {
		field  string
		src    GitSource
		locked *ResolvedGit
	}{{"ipa", o.IPA, l.IPA}, {"requirements", o.Requirements, l.Requirements}} {
		var lk ResolvedGit
		if g.locked != nil {
			lk = *g.locked
		}
		ref := g.src.Ref
		if ref == "" && g.src.Repo != "" {
			ref = "HEAD"
		}
		switch {
		case g.src.Repo != lk.Repo:
			return mismatch(g.field+".repo", g.src.Repo, lk.Repo)
		case ref != lk.Ref:
			return mismatch(g.field+".ref", ref, lk.Ref)
		case g.src.Commit != "" && g.src.Commit != lk.Commit:
			return mismatch(g.field+".commit", g.src.Commit, lk.Commit)
		}
	}
	if o.BuilderPin != "" && !o.AllowUnpinned && o.BuilderPin != l.BuilderImage && "sha256:"+o.BuilderPin != l.BuilderImage && !strings.Contains(o.BuilderPin, "@") {
		return mismatch("builder.id", o.BuilderPin, l.BuilderImage)
	}
	if o.SourceDateEpoch != 0 && o.SourceDateEpoch != l.SourceDateEpoch {
		return mismatch("sourceDateEpoch", fmt.Sprint(o.SourceDateEpoch), fmt.Sprint(l.SourceDateEpoch))
	}
	wantPython := o.IPA.Repo != "" && o.Requirements.Repo != ""
	switch {
	case wantPython && l.Python == nil:
		return mismatch("python", "a wheel closure (ipa and requirements are set)", "")
	case !wantPython && l.Python != nil:
		return mismatch("python", "", "a wheel closure")
	case l.Python == nil:
		return nil
	}
	index := o.PythonIndex
	if index == "" {
		index = DefaultPythonIndex
	}
	if index != l.Python.Index {
		return mismatch("pythonIndex", index, l.Python.Index)
	}
	pkgs, err := ExternalBuildrootPackages(o.External)
	if err != nil {
		return err
	}
	if got, locked := strings.Join(pkgs, " "), strings.Join(l.Python.BuildrootPackages, " "); got != locked {
		return mismatch("IRONIC_PYTHON_AGENT_DEPENDENCIES (python-* packages) in "+filepath.Join(o.External, IPAPackageMk), got, locked)
	}
	return nil
}

func orTree(br LockedBuildroot) string {
	if br.TreeSHA256 != "" {
		return "a local tree (treeSha256 " + br.TreeSHA256 + ")"
	}
	return br.URL
}

// LockPolicy says what EnsureLock does with an existing lock file.
type LockPolicy int

const (
	// LockKeep uses a lock that matches the configuration and refuses one that does not, with
	// a *LockMismatchError (`ipa-oci build`).
	LockKeep LockPolicy = iota
	// LockRefresh keeps a lock that matches the configuration and resolves anew one that
	// does not (`ipa-oci lock`).
	LockRefresh
	// LockUpdate resolves every input anew whatever the lock says (`ipa-oci lock --update`,
	// `ipa-oci build --update-lock`); the old lock is not even read.
	LockUpdate
)

// LockAction is what EnsureLock did.
type LockAction string

// The actions of EnsureLock.
const (
	LockUsed     LockAction = "used"     // the existing lock matches and was kept
	LockCreated  LockAction = "created"  // there was no lock: it was resolved and written
	LockReplaced LockAction = "replaced" // the lock was resolved anew and written
)

// EnsureLock returns the lock at path for the configuration o, resolving (ResolveLock) and
// writing it when it is missing or when policy says so. A missing lock is always created
// (the log says so); a lock that does not parse or validate is an error unless the policy is
// LockUpdate. Writing is atomic: a failed resolution leaves the old lock as it was.
func EnsureLock(ctx context.Context, o Options, path string, policy LockPolicy) (*Lock, LockAction, error) {
	log := o.Log
	if log == nil {
		log = logrus.New()
	}
	log = log.WithField("lock", path)
	if o.LockFile == "" {
		o.LockFile = path
	}
	action := LockReplaced
	if policy != LockUpdate {
		l, err := LoadLock(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			log.Info("no " + path + ": running `ipa-oci lock` first")
			action = LockCreated
		case err != nil:
			return nil, "", err
		default:
			cerr := l.Check(o)
			var me *LockMismatchError
			switch {
			case cerr == nil:
				return l, LockUsed, nil
			case !errors.As(cerr, &me):
				return nil, "", cerr
			case policy == LockKeep:
				return nil, "", cerr
			}
			log.WithField("field", me.Field).Info(path + " does not match the configuration: resolving anew")
		}
	}
	l, err := ResolveLock(ctx, o)
	if err != nil {
		return nil, "", err
	}
	if err := WriteLock(path, l); err != nil {
		return nil, "", err
	}
	log.WithField("action", string(action)).Info("wrote " + path)
	return l, action, nil
}

// WheelHashError is a fetch phase that downloaded a wheel whose sha256 is not the one the
// lock pins: the file changed on the index (or on the way) since the lock was made.
type WheelHashError struct {
	File, URL, Locked, Got string
	LockFile               string // the lock file (default ipa-oci.lock)
	Err                    error  // the fetch phase's *ContainerExitError
}

func (e *WheelHashError) Error() string {
	return fmt.Sprintf("fetch phase: wheel %s from %s does not have the sha256 %s pins (pinned %s, downloaded %s): it changed on the index since the lock; find out why before accepting it by locking anew",
		e.File, e.URL, orDefault(e.LockFile, LockFileName), e.Locked, orNone(e.Got))
}

func (e *WheelHashError) Unwrap() error { return e.Err }

// Is makes a *WheelHashError match ErrRelock: accepting the new wheel means locking anew.
func (e *WheelHashError) Is(target error) bool { return target == ErrRelock }

func orNone(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// Buildroot's support/download/check-hash messages for a file with the wrong hash.
var (
	wrongHashRE = regexp.MustCompile(`^ERROR: (\S+) has wrong sha256 hash:$`)
	gotHashRE   = regexp.MustCompile(`^ERROR: got\s*: ([0-9a-f]{64})$`)
)

// hashWatch notes, from a fetch phase's log lines, the first file Buildroot's hash check
// refused.
type hashWatch struct {
	mu        sync.Mutex
	file, got string
}

func (w *hashWatch) line(l string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := wrongHashRE.FindStringSubmatch(l); m != nil && w.file == "" {
		w.file = m[1]
	} else if m := gotHashRE.FindStringSubmatch(l); m != nil && w.file != "" && w.got == "" {
		w.got = m[1]
	}
}

// wheelHashError maps a failed fetch phase to a *WheelHashError when the hash check refused
// a locked wheel; otherwise it returns err.
func (b *build) wheelHashError(w *hashWatch, err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == "" || b.o.Lock == nil {
		return err
	}
	for _, wh := range b.o.Lock.WheelsFor(b.o.Arch) {
		if wh.File() == w.file {
			return &WheelHashError{File: wh.File(), URL: wh.URL, Locked: wh.SHA256, Got: w.got, LockFile: b.o.LockFile, Err: err}
		}
	}
	return err
}
