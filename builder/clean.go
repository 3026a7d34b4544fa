package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// outputTreeDirs are what Clean removes from the output directory: Buildroot's O= and the
// scratch directories ipa-oci writes there. The artifacts of the last build (kernel,
// initramfs, build-info.json, build.log, legal-info.tar.gz) stay, as do the download and
// ccache directories.
var outputTreeDirs = []string{"buildroot", scratchDirName, lockDirName, writeBackDirName}

// Clean removes the output tree of the build o describes: OUTPUT/buildroot (Buildroot's O=,
// with its .config: unsaved configuration changes go too) and ipa-oci's scratch directories
// in OUTPUT. It refuses while a builder container of this output directory runs, and when the
// download or ccache directory lies inside what it would remove. It returns the directories
// it removed.
func Clean(ctx context.Context, o Options) ([]string, error) {
	if err := o.normalize(false); err != nil {
		return nil, err
	}
	if o.Output == "" {
		return nil, errkind.Mark(ErrNoOutput, "no output directory: set output in %s", o.configName())
	}
	cli := o.Docker
	if cli == nil {
		c, err := NewDockerClient(ctx)
		if err != nil {
			o.Log.WithError(err).Debug("clean: no engine to ask for running builder containers")
		} else {
			defer c.Close()
			cli = c
		}
	}
	return cleanOutput(ctx, cli, o, o.Log)
}

// clean is Clean for `ipa-oci build --clean`.
func (b *build) clean(ctx context.Context) error {
	removed, err := cleanOutput(ctx, b.cli, b.o, b.log)
	if err == nil {
		b.log.WithField("removed", removed).Info("clean: removed the output tree (download and ccache directories kept)")
	}
	return err
}

func cleanOutput(ctx context.Context, cli client.APIClient, o Options, log logrus.FieldLogger) ([]string, error) {
	var dirs []string
	for _, d := range outputTreeDirs {
		dirs = append(dirs, filepath.Join(o.Output, d))
	}
	for _, keep := range []struct{ flag, dir string }{{"--dl-dir", o.DLDir}, {"--ccache-dir", o.CcacheDir}} {
		for _, d := range dirs {
			if keep.dir == d || strings.HasPrefix(keep.dir, d+string(filepath.Separator)) {
				return nil, fmt.Errorf("clean: the %s directory %s is inside %s, which clean removes: move it out of the output directory", strings.TrimPrefix(keep.flag, "--"), keep.dir, d)
			}
		}
	}
	if cli != nil {
		actx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		res, err := cli.ContainerList(actx, client.ContainerListOptions{Filters: make(client.Filters).Add("label", LabelOutput+"="+o.Output)})
		if err != nil {
			return nil, fmt.Errorf("clean: list builder containers: %w", err)
		}
		if len(res.Items) > 0 {
			return nil, fmt.Errorf("clean: builder container %s (%s) is running on %s: wait for it, or stop it first", shortID(res.Items[0].ID), res.Items[0].Labels[LabelPhase], o.Output)
		}
	}
	var removed []string
	for _, d := range dirs {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := removeTree(d); err != nil {
			return removed, fmt.Errorf("clean: %w", err)
		}
		log.WithField("dir", d).Info("removed")
		removed = append(removed, d)
	}
	return removed, nil
}

// removeTree removes p and everything below it without following symlinks. Builds leave
// read-only directories behind (Go's module cache, for one): when removal fails, the tree's
// directories are made writable by their owner and removal is tried again.
func removeTree(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() { // WalkDir reports a symlink as a symlink, never as a directory
			if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o700 != 0o700 {
				os.Chmod(q, fi.Mode().Perm()|0o700)
			}
		}
		return nil
	})
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w (files written by the builder container as another user: remove them as that user)", p, err)
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
