package builder

import "errors"

// Kinds of the errors a user fixes by changing an input. The messages say what to change in
// the terms of ipa-oci.yaml (or of Options, for a library caller) and name no command-line
// flag: a front end recognises the kind with errors.Is and adds its own hint
// (cmd/ipa-oci/hints.go adds the flag).
var (
	// ErrNoOutput: no output directory (Options.Output, output in ipa-oci.yaml).
	ErrNoOutput = errors.New("no output directory")
	// ErrDefconfigNotFound: the defconfig is not in the external tree's configs/
	// (Options.External, Options.Defconfig).
	ErrDefconfigNotFound = errors.New("defconfig not found")
	// ErrUser: Options.User is not a numeric, non-root UID:GID.
	ErrUser = errors.New("unusable container user")
	// ErrOffline: something must be downloaded but the build is offline (Options.Offline).
	ErrOffline = errors.New("needs the network")
	// ErrStaleFetch: the fetch stamp says the sources are there but one is missing
	// (Options.ForceFetch runs the fetch phase anyway).
	ErrStaleFetch = errors.New("stale fetch stamp")
	// ErrNoBuilderImage: no builder image is configured (Options.BuilderImage).
	ErrNoBuilderImage = errors.New("no builder image")
	// ErrBuilderImagePin: the builder image is not the one the lock or builder.id pins
	// (Options.AllowUnpinned accepts it anyway).
	ErrBuilderImagePin = errors.New("builder image not pinned")
	// ErrNoDefaultNetwork: the engine has no default bridge network for the fetch phase
	// (Options.HostNetwork, or Options.Offline).
	ErrNoDefaultNetwork = errors.New("the Docker engine has no default bridge network")
	// ErrLockMismatch: the lock does not match the configuration (a *LockMismatchError;
	// EnsureLock with LockUpdate locks anew).
	ErrLockMismatch = errors.New("lock does not match the configuration")
	// ErrRelock: the lock is unreadable, or what it pins changed: lock anew, knowingly.
	ErrRelock = errors.New("lock anew")
	// ErrNoBuildroot: neither a Buildroot release (buildroot.url, .sha256) nor a local tree
	// (Options.Buildroot.Src) is configured.
	ErrNoBuildroot = errors.New("no Buildroot")
	// ErrNeedsBuildrootSrc: the lock or the rebuilt build used a local Buildroot tree that is
	// not given (Options.Buildroot.Src).
	ErrNeedsBuildrootSrc = errors.New("needs the local Buildroot tree")
	// ErrNeedsKernelConfig: a kernel config directory is needed but not set
	// (Options.KernelConfig).
	ErrNeedsKernelConfig = errors.New("needs the kernel config directory")
	// ErrNoSourceDateEpoch: no SOURCE_DATE_EPOCH can be worked out (Options.SourceDateEpoch).
	ErrNoSourceDateEpoch = errors.New("no SOURCE_DATE_EPOCH")
	// ErrMakeOption: a make option (not a target, not VAR=VALUE) was given to Make.
	ErrMakeOption = errors.New("make option")
	// ErrBaseImage: the builder image's base image could not be pulled (ImageOptions.BuildArgs
	// BASE_IMAGE names another).
	ErrBaseImage = errors.New("base image not available")
)
