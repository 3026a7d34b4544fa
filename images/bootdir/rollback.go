package bootdir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipa-oci/ipa-oci/images/artifact"
)

// Rollback switches arch in dir back to the version before the current one, after checking
// that version's files.
func Rollback(ctx context.Context, dir, arch string) (*Record, error) {
	if arch == "" {
		arch = artifact.DefaultArch
	}
	d, err := openDestDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	unlock, err := d.lock(ctx, func(string) {})
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	defer unlock()
	prevDir, prev, err := d.linked(arch, "previous")
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	if prev == nil {
		return nil, fmt.Errorf("rollback %s: no previous %s version kept; nothing to roll back to", dir, arch)
	}
	// The previous version's files are served after the switch: check them first.
	bad, err := d.checkFiles(ctx, prevDir, prev, false)
	if err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("rollback %s: the previous %s version is damaged (%s); nothing rolled back (pull by digest to restore it)", dir, arch, bad[0])
	}
	if err := d.ensurePublic(arch, prevDir); err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	var extra []string
	if _, err := os.Stat(filepath.Join(prevDir, ipxeName(arch))); err == nil {
		extra = append(extra, ipxeName(arch))
	}
	if err := d.switchTo(arch, prevDir, prev, extra); err != nil {
		return nil, fmt.Errorf("rollback %s: %w", dir, err)
	}
	return prev, nil
}
