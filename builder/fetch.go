package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// Network modes of the phase containers.
const (
	networkNone    = "none"    // build phase: no network at all
	networkDefault = "default" // fetch phase: the engine's default (bridge) network
	networkHost    = "host"    // fetch phase with HostNetwork: the host's network namespace
)

// NoDefaultNetworkError explains why a fetch phase cannot run on an engine without a bridge.
type NoDefaultNetworkError struct{ ConfigFile string }

func (e *NoDefaultNetworkError) Error() string {
	return ErrNoDefaultNetwork.Error() + " (dockerd --bridge=none?), so the fetch phase and the lock step would have no network: set hostNetwork: true in " + orDefault(e.ConfigFile, ConfigFileName) + " to run it in the host's network namespace, give the engine a bridge, or build offline from a filled download cache"
}

func (e *NoDefaultNetworkError) Unwrap() error { return ErrNoDefaultNetwork }

// fetch runs the fetch phase unless --offline or a stamp for these inputs says it is done.
// It sees the download cache read-write, except the host-owned git mirrors and stamps, and a
// fresh scratch O= rather than the build phase's, so nothing a build phase wrote reaches it.
func (b *build) fetch(ctx context.Context) error {
	o := b.o
	stamp := filepath.Join(b.stampsDir(), b.fetchKey())
	_, stampErr := os.Lstat(stamp)
	switch {
	case o.Offline:
		b.log.Info("offline: fetch phase skipped; every source must already be in the download cache")
		b.res.FetchSkipped = true
		return nil
	case stampErr == nil && !o.ForceFetch:
		b.log.WithField("stamp", stamp).Info("fetch phase skipped: these inputs were fetched before")
		b.res.FetchSkipped = true
		return nil
	}
	network, err := b.fetchNetwork(ctx)
	if err != nil {
		return err
	}
	scratch, err := b.freshScratch()
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	mounts := b.fetchMounts(scratch)
	watch := &hashWatch{}
	b.sink.watch = func(_, l string) { watch.line(l) }
	defer func() { b.sink.watch = nil }()
	if err := b.phase(ctx, "fetch", network, mounts, b.fetchScript()); err != nil {
		return b.wheelHashError(watch, err)
	}
	if err := fsutil.WriteFileAtomic(stamp, []byte(b.fetchKeyText())); err != nil {
		b.log.WithError(err).Warn("could not write the fetch stamp; the next build fetches again")
	}
	return nil
}

// scratchDirName is the fetch phase's throw-away O= in the output directory.
const scratchDirName = ".fetch-output"

// freshScratch creates an empty OUTPUT/.fetch-output for a fetch-phase container's O=.
func (b *build) freshScratch() (string, error) {
	scratch := filepath.Join(b.o.Output, scratchDirName)
	if err := os.RemoveAll(scratch); err != nil {
		return "", fmt.Errorf("remove %s: %w", scratch, err)
	}
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", scratch, err)
	}
	b.ownForContainer(scratch)
	return scratch, nil
}

// fetchMounts are the fetch phase's mounts: the inputs read-only, the scratch O= and the
// download cache read-write, the host's git mirrors and fetch stamps read-only. `ipa-oci make`
// runs its downloading targets with exactly these.
func (b *build) fetchMounts(scratch string) []mount.Mount {
	return append(b.inputMounts(),
		bind(scratch, ContainerOutput, false),
		bind(b.o.DLDir, ContainerDL, false),
		bind(b.mirrorsDir(), ContainerDL+"/ipa-oci-git", true),
		bind(b.stampsDir(), ContainerDL+"/.ipa-oci-fetch", true),
	)
}

// fetchNetwork is fetchNetworkMode for this build, its error naming the configuration file.
func (b *build) fetchNetwork(ctx context.Context) (string, error) {
	n, err := fetchNetworkMode(ctx, b.cli, b.o.HostNetwork)
	if errors.Is(err, ErrNoDefaultNetwork) {
		return "", &NoDefaultNetworkError{ConfigFile: b.o.ConfigFile}
	}
	return n, err
}

// fetchNetworkMode picks the fetch phase's network: host networking when asked for, else the
// engine's default network if it has one (Docker's "bridge", Podman's "podman").
func fetchNetworkMode(ctx context.Context, cli client.APIClient, hostNetwork bool) (string, error) {
	if hostNetwork {
		return networkHost, nil
	}
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	res, err := cli.NetworkList(actx, client.NetworkListOptions{})
	if err != nil {
		return "", fmt.Errorf("list the Docker engine's networks: %w", err)
	}
	for _, n := range res.Items {
		if n.Name == "bridge" || n.Name == "podman" || n.Options["com.docker.network.bridge.default_bridge"] == "true" {
			return networkDefault, nil
		}
	}
	return "", ErrNoDefaultNetwork
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
