package builder

import (
	"fmt"
	"os"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
)

// RebuildOptions turns a published build-info into build options: every recorded input
// (Buildroot release, git commits, SOURCE_DATE_EPOCH, arch, defconfig, builder image ID, the
// lock with its wheel list, and the extra make variables) is taken from bi; local supplies
// what cannot travel in a record (the external tree, kernel config and Buildroot checkout
// paths, output and cache directories, logger). The variables the build passed with --env
// must be set locally to the same values (build-info has their sha256). The local trees must
// hash to the recorded values, otherwise the rebuild could not reproduce the bytes.
func RebuildOptions(bi *BuildInfo, local Options) (Options, error) {
	in := bi.Inputs
	o := local
	o.Defconfig, o.Arch, o.LegalInfo = in.Defconfig, in.Arch, in.LegalInfo
	o.SourceDateEpoch = in.SourceDateEpoch
	// The extra make variables as recorded; the --env variables by name, from the local
	// environment, which must hold the same values (build-info has only their sha256).
	o.MakeArgs = append([]string(nil), in.MakeArgs...)
	hostEnv := local.HostEnv
	if hostEnv == nil {
		hostEnv = os.Environ()
	}
	env, err := checkRecordedEnv(in.Env, hostEnv)
	if err != nil {
		return o, err
	}
	o.Env = env
	if in.Buildroot.Local {
		if local.Buildroot.Src == "" {
			return o, errkind.Mark(ErrNeedsBuildrootSrc, "the build used a local Buildroot tree (sha256 %s): give the same tree", in.Buildroot.TreeSHA256)
		}
		if err := checkTree("Buildroot tree", local.Buildroot.Src, in.Buildroot.TreeSHA256); err != nil {
			return o, err
		}
		o.Buildroot = BuildrootConfig{Src: local.Buildroot.Src, Version: in.Buildroot.Version}
	} else {
		o.Buildroot = BuildrootConfig{URL: in.Buildroot.URL, SHA256: in.Buildroot.SHA256, Version: in.Buildroot.Version}
	}
	if err := checkTree("external tree", local.External, in.External.SHA256); err != nil {
		return o, err
	}
	if in.KernelConfig != nil {
		if local.KernelConfig == "" {
			return o, errkind.Mark(ErrNeedsKernelConfig, "the build used a kernel config directory (sha256 %s): give the same directory", in.KernelConfig.SHA256)
		}
		if err := checkTree("kernel config directory", local.KernelConfig, in.KernelConfig.SHA256); err != nil {
			return o, err
		}
	} else {
		o.KernelConfig = ""
	}
	o.IPA, o.Requirements = GitSource{}, GitSource{}
	// Ref and commit travel separately: the commit is what gets fetched and built, the ref is
	// what the build sees (a branch name stays a branch name, so the external tree's check of
	// the requirements ref against its wheel list passes as it did in the original build).
	if in.IPA != nil {
		o.IPA = GitSource{Repo: in.IPA.Repo, Ref: in.IPA.Ref, Commit: in.IPA.Commit}
	}
	if in.Requirements != nil {
		o.Requirements = GitSource{Repo: in.Requirements.Repo, Ref: in.Requirements.Ref, Commit: in.Requirements.Commit}
	}
	if !local.AllowUnpinned {
		o.BuilderImage, o.BuilderPin = in.BuilderImage.ID, in.BuilderImage.ID
	}
	o.Lock = nil
	if bi.Lock != nil {
		// The build's lock, replayed as it is: git commits, SOURCE_DATE_EPOCH, the wheels. The
		// image is the one that ran (an unpinned --builder-image build ran another than the
		// lock's); the local ipa-oci.lock plays no part.
		l := *bi.Lock
		l.BuilderImage = in.BuilderImage.ID
		if err := l.Validate(); err != nil {
			return o, fmt.Errorf("the build-info's lock: %w", err)
		}
		o.Lock = &l
	}
	return o, nil
}

func checkTree(what, dir, want string) error {
	got, err := TreeHash(dir)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s %s hashes to %s but the build used %s: check out the revision that was built", what, dir, got, want)
	}
	return nil
}

// Comparison is one output file of a rebuild against the published record.
type Comparison struct {
	Name  string
	Want  string // digest in the record
	Got   string // digest of the rebuild ("" if it produced no such file)
	Match bool
}

// CompareOutputs compares the rebuilt outputs with the recorded ones, file by file.
func CompareOutputs(recorded, rebuilt []OutputFile) []Comparison {
	got := map[string]string{}
	for _, f := range rebuilt {
		got[f.Name] = f.SHA256
	}
	var out []Comparison
	for _, f := range recorded {
		g := got[f.Name]
		out = append(out, Comparison{Name: f.Name, Want: f.SHA256, Got: g, Match: g == f.SHA256})
	}
	return out
}
