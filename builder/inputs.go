package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/sirupsen/logrus"
)

// checkBuilderImage resolves the builder image and enforces the pins: builder.id from the
// configuration and, when building from a lock, the lock's image ID. Without any pin the build
// is refused, except when resolving a lock, which pins the image it ran in.
func (b *build) checkBuilderImage(ctx context.Context) error {
	o := b.o
	ref := o.BuilderImage
	if ref == "" {
		ref = o.BuilderPin
	}
	if ref == "" {
		return errkind.Mark(ErrNoBuilderImage, "no builder image: run `ipa-oci builder build`, then set builder.image (or builder.id) in %s", o.configName())
	}
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	ii, err := b.cli.ImageInspect(actx, ref)
	if err != nil {
		return fmt.Errorf("builder image %s: %w; build it with `ipa-oci builder build`", ref, err)
	}
	id := ii.ID
	type pin struct {
		id, file string
		lock     bool
	}
	pins := []pin{{o.BuilderPin, o.configName(), false}}
	if o.Lock != nil && !b.locking {
		pins = append(pins, pin{o.Lock.BuilderImage, o.lockName(), true})
	}
	pinned := false
	for _, p := range pins {
		if p.id == "" {
			continue
		}
		pinned = true
		switch {
		case matchesPin(id, ii.RepoDigests, p.id):
		case o.AllowUnpinned:
			b.log.WithFields(logrus.Fields{"image": ref, "id": id, "pin": p.id, "pinnedBy": p.file}).Warn("the builder image given overrides the pinned one")
		case p.lock:
			return errkind.Mark(ErrBuilderImagePin, "builder image %s is %s but %s pins %s: rebuild the pinned image, or pin this one by locking anew", ref, id, p.file, p.id)
		default:
			return errkind.Mark(ErrBuilderImagePin, "builder image %s is %s but %s pins %s: rebuild the pinned image, or update builder.id", ref, id, p.file, p.id)
		}
	}
	switch {
	case pinned || o.AllowUnpinned:
	case b.locking:
		b.log.WithFields(logrus.Fields{"image": ref, "id": id}).Info("builder image not pinned in " + o.configName() + ": " + o.lockName() + " pins its ID")
	default:
		return errkind.Mark(ErrBuilderImagePin, "builder image %s (%s) is not pinned: build from %s (`ipa-oci lock` pins it), or set builder.id: %s in %s", ref, id, o.lockName(), id, o.configName())
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
			return errkind.Mark(ErrNoBuildroot, "no Buildroot: set buildroot.url and buildroot.sha256, or buildroot.src, in %s", o.configName())
		}
		tree, err := fetchBuildroot(ctx, o.CacheDir, o.Buildroot.URL, o.Buildroot.SHA256, o.Offline, b.log)
		if err != nil {
			from := o.configName()
			if o.Lock != nil {
				from = o.lockName()
			}
			return fmt.Errorf("%w (from %s)", err, from)
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
	if in.IPA, err = b.resolveGit(ctx, o.IPA); err != nil {
		return err
	}
	if in.Requirements, err = b.resolveGit(ctx, o.Requirements); err != nil {
		return err
	}
	in.SourceDateEpoch = o.SourceDateEpoch
	if in.SourceDateEpoch == 0 {
		if in.IPA == nil {
			return errkind.Mark(ErrNoSourceDateEpoch, "no SOURCE_DATE_EPOCH: set ipa.repo (its commit time is the default) or sourceDateEpoch")
		}
		in.SourceDateEpoch = in.IPA.CommitTime
	}
	b.recordExtras()
	return nil
}

// resolveGit resolves src's ref to a commit (unless src pins one), makes sure the commit is
// in the host-owned mirror, and returns what build-info records: the ref as given and the
// commit. nil when src names no repository.
func (b *build) resolveGit(ctx context.Context, src GitSource) (*ResolvedGit, error) {
	if src.Repo == "" {
		return nil, nil
	}
	ref := src.Ref
	if ref == "" {
		ref = "HEAD"
	}
	dir := filepath.Join(b.mirrorsDir(), mirrorName(src.Repo))
	commit := src.Commit
	var err error
	switch {
	case commit != "":
		if !commitRE.MatchString(commit) {
			return nil, fmt.Errorf("%s: commit %q is not a 40-hex commit ID", src.Repo, commit)
		}
		if commitRE.MatchString(ref) && ref != commit {
			return nil, fmt.Errorf("%s: ref %s and commit %s disagree", src.Repo, ref, commit)
		}
	case b.o.Offline:
		commit, err = b.git.resolveOffline(ctx, dir, src.Repo, ref)
	default:
		commit, err = b.git.lsRemote(ctx, src.Repo, ref)
	}
	if err != nil {
		return nil, err
	}
	t, err := b.git.ensureCommit(ctx, dir, src.Repo, ref, commit, b.o.Offline)
	if err != nil {
		return nil, err
	}
	b.log.WithFields(logrus.Fields{"repo": src.Repo, "ref": ref, "commit": commit}).Info("resolved git ref")
	return &ResolvedGit{Repo: src.Repo, Ref: ref, Commit: commit, CommitTime: t}, nil
}

// mirrorsDir holds the bare git mirrors the host fetches into: DL_DIR/ipa-oci-git.
func (b *build) mirrorsDir() string { return filepath.Join(b.o.DLDir, "ipa-oci-git") }

// stampsDir holds the fetch stamps: DL_DIR/.ipa-oci-fetch.
func (b *build) stampsDir() string { return filepath.Join(b.o.DLDir, ".ipa-oci-fetch") }

// fetchKeyText lists the inputs that decide which sources the fetch phase downloads.
func (b *build) fetchKeyText() string {
	in := b.info.Inputs
	var sb strings.Builder
	fmt.Fprintf(&sb, "buildroot %s\nexternal %s\ndefconfig %s\narch %s\nbuilder %s\n",
		in.Buildroot.TreeSHA256, in.External.SHA256, in.Defconfig, in.Arch, in.BuilderImage.ID)
	if in.KernelConfig != nil {
		fmt.Fprintf(&sb, "kernel-config %s\n", in.KernelConfig.SHA256)
	}
	if b.wheelsKey != "" {
		fmt.Fprintf(&sb, "wheels %s\n", b.wheelsKey)
	}
	for _, g := range []*ResolvedGit{in.IPA, in.Requirements} {
		if g != nil {
			fmt.Fprintf(&sb, "git %s %s %s\n", g.Repo, g.Ref, g.Commit)
		}
	}
	// --make-arg (BR2_PRIMARY_SITE=...) and --env can change what is downloaded.
	for _, a := range in.MakeArgs {
		fmt.Fprintf(&sb, "make-arg %q\n", a)
	}
	for _, e := range in.Env {
		fmt.Fprintf(&sb, "env %s %s\n", e.Name, e.SHA256)
	}
	return sb.String()
}

func (b *build) fetchKey() string {
	h := sha256.Sum256([]byte(b.fetchKeyText()))
	return hex.EncodeToString(h[:])
}
