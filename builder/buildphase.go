package builder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/moby/moby/api/types/mount"
)

// exitMissingSource is the build-phase script's exit code when `make source` fails with the
// network off: a source is missing from the download cache.
const exitMissingSource = 97

// buildPhase runs Buildroot with no network. It may write only O= and the ccache directory;
// the download cache (with Buildroot's own git caches and the host's mirrors) is read-only, so
// nothing it runs can change what a later fetch phase or the host's git reads.
func (b *build) buildPhase(ctx context.Context) error {
	o := b.o
	err := b.phase(ctx, "build", networkNone, b.buildMounts(), b.buildScript())
	var ce *ContainerExitError
	if errors.As(err, &ce) && ce.Code == exitMissingSource {
		kind, hint := ErrOffline, "let the fetch phase download it (this build is offline)"
		if !o.Offline {
			kind, hint = ErrStaleFetch, "run the fetch phase again (the fetch stamp under "+b.stampsDir()+" is stale)"
		}
		return errkind.Mark(kind, "a source is missing from the download cache %s and the build phase has no network (and may not write there): %s\n%w", o.DLDir, hint, err)
	}
	return err
}

// buildMounts are the build phase's mounts: the inputs read-only, O= (OUTPUT/buildroot) and
// the ccache directory read-write, the download cache read-only. `ipa-oci make` (all but
// downloading targets) and `ipa-oci shell` run with exactly these.
func (b *build) buildMounts() []mount.Mount {
	return append(b.inputMounts(),
		bind(b.brOut(), ContainerOutput, false),
		bind(b.o.DLDir, ContainerDL, true),
		bind(b.o.CcacheDir, ContainerCcache, false),
	)
}

func (b *build) buildScript() string {
	m := b.makeCmd()
	jobs := ""
	if b.o.Jobs > 0 {
		jobs = fmt.Sprintf(" BR2_JLEVEL=%d", b.o.Jobs)
	}
	lines := []string{
		"set -euo pipefail",
		m + " " + shellQuote(b.o.Defconfig),
		"if ! " + m + " source; then echo 'ipa-oci: a source is missing from " + ContainerDL + " and the network is off' >&2; exit " + strconv.Itoa(exitMissingSource) + "; fi",
		m + jobs + " all",
		m + " -s show-info > " + ContainerOutput + "/" + ShowInfoName,
	}
	if b.o.LegalInfo {
		lines = append(lines, "rm -rf "+ContainerOutput+"/legal-info", m+" legal-info")
	}
	return strings.Join(lines, "\n")
}
