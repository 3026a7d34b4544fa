package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// buildFlags are `ipa-oci build`'s inputs; each one set on the command line wins over
// ipa-oci.yaml. lock, rebuild, make, shell, config and clean take a subset (flagKind).
type buildFlags struct {
	config       string
	lockFile     string
	updateLock   bool
	cfg          builder.Config
	builderImage string
	user         string
	offline      bool
	legalInfo    bool
	forceFetch   bool
	clean        bool
	env          []string
	makeArgs     []string
	push         string
	ipaVersion   string
	tags         []string
	reg          registryFlags
}

// flagKind says which of the build flags a command takes.
type flagKind int

const (
	buildKind   flagKind = iota // build: every flag
	lockKind                    // lock: the inputs, no make flags, no push
	rebuildKind                 // rebuild: what the build-info does not fix (rebuildReplaced are refused)
	makeKind                    // make, shell, config: the inputs and the make flags, no push
	cleanKind                   // clean: where the output and caches are
)

// rebuildReplaced are the flags rebuild takes from the build-info instead: they are hidden in
// its help and refused (rebuildFlagError).
var rebuildReplaced = map[string]string{
	"buildroot-url": "buildroot.url", "buildroot-sha256": "buildroot.sha256", "buildroot-version": "buildroot.version",
	"defconfig": "defconfig", "ipa-repo": "ipa.repo", "ipa-ref": "ipa.ref",
	"requirements-repo": "requirements.repo", "requirements-ref": "requirements.ref",
	"source-date-epoch": "sourceDateEpoch", "legal-info": "legalInfo", "python-index": "the lock's wheels",
	"lock": "the lock", "make-arg": "makeArgs", "env": "env",
}

func (f *buildFlags) add(fs *pflag.FlagSet, kind flagKind) {
	c := &f.cfg
	fs.StringVarP(&f.config, "config", "c", "", "build config (default: ./"+builder.ConfigFileName+" if it exists)")
	fs.StringVarP(&c.Output, "output", "o", "", "output directory (artifacts, build.log, Buildroot's O= in buildroot/)")
	fs.StringVar(&c.DLDir, "dl-dir", "", "download cache shared between builds (default: $IPA_OCI_CACHE/dl)")
	fs.StringVar(&c.CcacheDir, "ccache-dir", "", "ccache directory shared between builds (default: $IPA_OCI_CACHE/ccache)")
	if kind == cleanKind {
		return
	}
	fs.StringVar(&c.Buildroot.URL, "buildroot-url", "", "Buildroot release tarball URL")
	fs.StringVar(&c.Buildroot.SHA256, "buildroot-sha256", "", "sha256 of the Buildroot release tarball")
	fs.StringVar(&c.Buildroot.Version, "buildroot-version", "", "Buildroot version (recorded in build-info)")
	fs.StringVar(&c.Buildroot.Src, "buildroot-src", "", "local Buildroot checkout instead of the release tarball")
	fs.StringVar(&c.External, "external", "", "BR2_EXTERNAL tree (default: buildroot-external next to the config)")
	fs.StringVar(&c.KernelConfig, "kernel-config", "", "kernel config directory, mounted read-only at "+builder.ContainerKernelConfig)
	fs.StringVar(&c.Defconfig, "defconfig", "", "defconfig in the external tree's configs/ (NAME or NAME_defconfig)")
	fs.StringVar(&c.Arch, "arch", "", "architecture: amd64 (x86_64) or arm64 (aarch64); default amd64")
	fs.StringVar(&c.IPA.Repo, "ipa-repo", "", "ironic-python-agent git repository")
	fs.StringVar(&c.IPA.Ref, "ipa-ref", "", "IPA branch, tag or commit (resolved to a commit and recorded)")
	fs.StringVar(&c.Requirements.Repo, "requirements-repo", "", "openstack/requirements git repository")
	fs.StringVar(&c.Requirements.Ref, "requirements-ref", "", "requirements branch, tag or commit")
	fs.IntVarP(&c.Jobs, "jobs", "j", 0, "parallel jobs in the build (BR2_JLEVEL; 0: Buildroot's default)")
	fs.Int64Var(&c.SourceDateEpoch, "source-date-epoch", 0, "SOURCE_DATE_EPOCH (default: the IPA commit's committer time)")
	fs.StringVar(&f.builderImage, "builder-image", "", "builder image to run, overriding the pin in the config (its ID is recorded)")
	fs.StringVar(&f.user, "user", "", "UID:GID in the container (default: yours; 1000:1000 when run as root)")
	fs.BoolVar(&f.offline, "offline", false, "skip the fetch phase; fail if a source is not in the download cache")
	fs.BoolVar(&f.legalInfo, "legal-info", false, "also run make legal-info and write OUTPUT/"+builder.LegalInfoName)
	fs.BoolVar(&f.forceFetch, "force-fetch", false, "run the fetch phase even if these inputs were fetched before")
	fs.BoolVar(&c.HostNetwork, "host-network", false, "run the fetch phase and the lock step in the host's network namespace (for engines without a bridge network, e.g. dockerd --bridge=none)")
	fs.StringVar(&c.PythonIndex, "python-index", "", "PEP 503 index the lock resolves the agent's wheels against (default "+builder.DefaultPythonIndex+")")
	fs.StringVar(&f.lockFile, "lock", "", "lock file (default: "+builder.LockFileName+" next to the config, or in the current directory)")
	if kind != lockKind {
		fs.StringArrayVar(&f.env, "env", nil, "pass the host environment variable NAME into the builder containers too (repeatable; build-info records the name and the sha256 of the value)")
		fs.StringArrayVar(&f.makeArgs, "make-arg", nil, "add the make variable NAME=VALUE to every make call (repeatable; recorded in build-info)")
	}
	switch kind {
	case rebuildKind:
		for name := range rebuildReplaced {
			fs.MarkHidden(name)
		}
	case makeKind:
		for _, name := range []string{"legal-info", "force-fetch"} {
			fs.MarkHidden(name) // no build, no fetch phase
		}
	}
	if kind == buildKind || kind == makeKind {
		fs.BoolVar(&f.updateLock, "update-lock", false, "resolve every floating input anew and rewrite the lock before building (default: use the lock; refuse one that no longer matches the config)")
	}
	if kind != buildKind {
		return
	}
	fs.BoolVar(&f.clean, "clean", false, "remove the output tree (OUTPUT/buildroot, Buildroot's O=) before building; the download and ccache directories stay")
	fs.StringVar(&f.push, "push", "", "after a successful build, push to REF (HOST/REPO:TAG or oci:DIR:TAG)")
	fs.StringVar(&f.ipaVersion, "ipa-version", "", "with --push: IPA version annotation and VERSION-ARCH tag (default: the IPA ref)")
	fs.StringSliceVar(&f.tags, "tag", nil, "with --push: extra tag (repeatable)")
}

// lockPolicy is what build, make and shell do with the lock: use it, or --update-lock.
func (f *buildFlags) lockPolicy() builder.LockPolicy {
	if f.updateLock {
		return builder.LockUpdate
	}
	return builder.LockKeep
}

// rebuildFlagError refuses the flags whose values rebuild takes from the build-info.
func rebuildFlagError(fs *pflag.FlagSet) error {
	var bad []string
	fs.Visit(func(fl *pflag.Flag) {
		if _, ok := rebuildReplaced[fl.Name]; ok {
			bad = append(bad, fl.Name)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("rebuild: --%s cannot be set: a rebuild replays %s from the build-info (to build other inputs, use `ipa-oci build`)", bad[0], rebuildReplaced[bad[0]])
}

// options merges the config file and the flags (flags win) into builder options, and finds
// the lock file's path. needOutput: the command writes build output.
// lockedOptions is options (an output directory required) with the lock in place: read, or
// written first by EnsureLock as f's lock flags allow.
func (f *buildFlags) lockedOptions(cmd *cobra.Command, g *globalOptions) (builder.Options, error) {
	o, err := f.options(cmd, g, true)
	if err != nil {
		return o, err
	}
	l, _, err := builder.EnsureLock(cmd.Context(), o, f.lockFile, f.lockPolicy())
	if err != nil {
		return o, buildError(cmd, err)
	}
	o.Lock = l
	return o, nil
}

func (f *buildFlags) options(cmd *cobra.Command, g *globalOptions, needOutput bool) (builder.Options, error) {
	path := f.config
	if path == "" {
		if _, err := os.Stat(builder.ConfigFileName); err == nil {
			path = builder.ConfigFileName
		}
	}
	c := &builder.Config{External: "buildroot-external"}
	if path != "" {
		var err error
		if c, err = builder.LoadConfig(path); err != nil {
			return builder.Options{}, err
		}
	}
	fl := cmd.Flags()
	set := func(name string, dst *string, v string) {
		if fl.Changed(name) {
			*dst = v
		}
	}
	in := f.cfg
	set("buildroot-url", &c.Buildroot.URL, in.Buildroot.URL)
	set("buildroot-sha256", &c.Buildroot.SHA256, in.Buildroot.SHA256)
	set("buildroot-version", &c.Buildroot.Version, in.Buildroot.Version)
	set("buildroot-src", &c.Buildroot.Src, in.Buildroot.Src)
	set("external", &c.External, in.External)
	set("kernel-config", &c.KernelConfig, in.KernelConfig)
	set("defconfig", &c.Defconfig, in.Defconfig)
	set("arch", &c.Arch, in.Arch)
	set("ipa-repo", &c.IPA.Repo, in.IPA.Repo)
	set("ipa-ref", &c.IPA.Ref, in.IPA.Ref)
	set("requirements-repo", &c.Requirements.Repo, in.Requirements.Repo)
	set("requirements-ref", &c.Requirements.Ref, in.Requirements.Ref)
	set("output", &c.Output, in.Output)
	set("dl-dir", &c.DLDir, in.DLDir)
	set("ccache-dir", &c.CcacheDir, in.CcacheDir)
	if fl.Changed("jobs") {
		c.Jobs = in.Jobs
	}
	if fl.Changed("source-date-epoch") {
		c.SourceDateEpoch = in.SourceDateEpoch
	}
	// A commit pinned in the config belongs to the repository and ref written there.
	if fl.Changed("ipa-repo") || fl.Changed("ipa-ref") {
		c.IPA.Commit = ""
	}
	if fl.Changed("requirements-repo") || fl.Changed("requirements-ref") {
		c.Requirements.Commit = ""
	}
	if fl.Changed("host-network") {
		c.HostNetwork = in.HostNetwork
	}
	set("python-index", &c.PythonIndex, in.PythonIndex)
	if fl.Changed("env") {
		c.Env = f.env
	}
	if fl.Changed("make-arg") {
		c.MakeArgs = f.makeArgs
	}
	if fl.Changed("buildroot-src") {
		c.Buildroot.URL, c.Buildroot.SHA256 = "", ""
	} else if fl.Changed("buildroot-url") {
		c.Buildroot.Src = ""
	}
	if c.Output == "" && needOutput {
		return builder.Options{}, errors.New("no output directory: pass --output DIR or set output in " + orConfigName(path))
	}
	if err := builder.CheckMakeArgs("--make-arg", c.MakeArgs); err != nil {
		return builder.Options{}, err
	}
	if err := builder.CheckEnvNames("--env", c.Env, os.Environ()); err != nil {
		return builder.Options{}, err
	}
	if f.lockFile == "" {
		f.lockFile = builder.LockPath(path)
	}
	o := builder.Options{
		Buildroot: c.Buildroot, External: c.External, KernelConfig: c.KernelConfig,
		Defconfig: c.Defconfig, Arch: c.Arch, IPA: c.IPA, Requirements: c.Requirements,
		Jobs: c.Jobs, Output: c.Output, DLDir: c.DLDir, CcacheDir: c.CcacheDir,
		SourceDateEpoch: c.SourceDateEpoch, HostNetwork: c.HostNetwork, PythonIndex: c.PythonIndex,
		Offline: f.offline, LegalInfo: f.legalInfo, ForceFetch: f.forceFetch,
		BuilderImage: c.Builder.Image, BuilderPin: c.Builder.ID,
		User:       f.user,
		Env:        c.Env,
		MakeArgs:   c.MakeArgs,
		Clean:      f.clean,
		ConfigFile: path,
		LockFile:   f.lockFile,
		Log:        g.log,
		Progress:   g.progressOut(cmd.ErrOrStderr()),
	}
	if f.builderImage != "" {
		o.BuilderImage, o.AllowUnpinned = f.builderImage, true
	}
	return o, nil
}

func newBuildCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the IPA kernel and initramfs with Buildroot in the pinned builder container",
		Long: `Build runs Buildroot inside the builder container, as your user, in two phases: fetch (the
engine's default network, or the host's with --host-network: make source, the external tree's
ipa-oci-fetch.sh) and build (no network, download cache read-only). It writes
OUTPUT/ironic-python-agent.kernel, OUTPUT/ironic-python-agent.initramfs, OUTPUT/build-info.json
(every input and output digest, the lock, and make show-info) and OUTPUT/build.log.
Inputs come from ipa-oci.yaml next to the tree (flags override it) and are pinned by
ipa-oci.lock beside it: without a lock, build runs 'ipa-oci lock' first; a lock that no longer
matches the configuration is refused (naming the field) unless --update-lock. See docs/build.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.lockedOptions(cmd, g)
			if err != nil {
				return err
			}
			res, err := builder.Build(cmd.Context(), o)
			if err != nil {
				return buildError(cmd, err)
			}
			out := cmd.OutOrStdout()
			for _, of := range res.Info.Outputs {
				fmt.Fprintf(out, "%s  %s\n", of.SHA256, filepath.Join(o.Output, of.Name))
			}
			if f.push == "" {
				return nil
			}
			return pushBuild(cmd, g, f, res)
		},
	}
	f.add(cmd.Flags(), buildKind)
	f.reg.add(cmd)
	return cmd
}

// orConfigName is the configuration file for messages: path, or ipa-oci.yaml when none.
func orConfigName(path string) string {
	if path == "" {
		return builder.ConfigFileName
	}
	return path
}

// buildError maps cancellation to exit code 130 (as after SIGINT).
func buildError(cmd *cobra.Command, err error) error {
	if cmd.Context().Err() != nil {
		return &exitError{code: 130, err: err}
	}
	return err
}

// pushBuild publishes a finished build's artifacts with its build-info as referrer.
func pushBuild(cmd *cobra.Command, g *globalOptions, f *buildFlags, res *builder.Result) error {
	bi, err := os.ReadFile(res.BuildInfoPath)
	if err != nil {
		return err
	}
	in := res.Info.Inputs
	req := artifact.PushRequest{
		Arch: in.Arch, Kernel: res.Kernel, Initramfs: res.Initramfs,
		IPAVersion: f.ipaVersion, Created: time.Unix(in.SourceDateEpoch, 0).UTC(),
		BuildInfo: bi, Tags: f.tags,
	}
	if in.IPA != nil {
		req.Revision, req.Source = in.IPA.Commit, in.IPA.Repo
		if req.IPAVersion == "" {
			req.IPAVersion = in.IPA.Ref
		}
	}
	t, ref, err := f.reg.open(g, cmd, f.push)
	if err != nil {
		return fmt.Errorf("build succeeded (artifacts in %s) but push to %s failed: %w", filepath.Dir(res.Kernel), f.push, err)
	}
	desc, err := artifact.Push(cmd.Context(), t, ref, req, artifact.WithLogger(g.log))
	if err != nil {
		return fmt.Errorf("build succeeded (artifacts in %s) but push to %s failed: %w", filepath.Dir(res.Kernel), f.push, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pushed %s@%s\n", f.push, desc.Digest)
	return nil
}
