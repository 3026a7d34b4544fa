package main

import (
	"errors"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/store"
)

// flagHints name the command-line flag that changes the outcome of an error of each kind: the
// packages below cmd/ name no flags, the CLI adds them.
var flagHints = []struct {
	kind error
	hint string
}{
	{store.ErrHandshake, "check the host, --plain-http for HTTP registries, and credentials in the docker config"},
	{bootdir.ErrPinMismatch, "update --pin to accept it"},
	{bootdir.ErrKernelArg, "--kernel-arg"},
	{artifact.ErrNoBuildInfo, "push with --build-info"},
	{builder.ErrNoOutput, "or pass --output DIR"},
	{builder.ErrDefconfigNotFound, "flags --external, --defconfig"},
	{builder.ErrUser, "--user"},
	{builder.ErrOffline, "run without --offline"},
	{builder.ErrStaleFetch, "run again with --force-fetch"},
	{builder.ErrNoBuilderImage, "or pass --builder-image"},
	{builder.ErrBuilderImagePin, "or pass --builder-image IMAGE to use this one all the same"},
	{builder.ErrNoDefaultNetwork, "--host-network, or --offline"},
	{builder.ErrLockMismatch, "or pass --update-lock"},
	{builder.ErrRelock, "`ipa-oci lock --update`"},
	{builder.ErrNoBuildroot, "or pass --buildroot-src DIR"},
	{builder.ErrNeedsBuildrootSrc, "--buildroot-src DIR"},
	{builder.ErrNeedsKernelConfig, "--kernel-config DIR"},
	{builder.ErrNoSourceDateEpoch, "or pass --source-date-epoch"},
	{builder.ErrMakeOption, "-s is --silent; other options: `ipa-oci shell`"},
	{builder.ErrBaseImage, "`ipa-oci builder build --build-arg BASE_IMAGE=NAME`"},
}

// withFlagHint appends to err, in parentheses, the hint of the first kind it matches.
func withFlagHint(err error) error {
	for _, h := range flagHints {
		if errors.Is(err, h.kind) {
			return &hintedError{err: err, hint: h.hint}
		}
	}
	return err
}

type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() + " (" + e.hint + ")" }
func (e *hintedError) Unwrap() error { return e.err }
