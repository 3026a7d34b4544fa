package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// VolatileImagePaths are the paths FileManifest leaves out: the engine creates or bind-mounts
// them in every container (so they say nothing about the image), and /.dockerenv marks any
// exported container. dockerd's init layer adds /etc/mtab (-> /proc/mounts) to every
// container it exports; Podman creates it at run time only.
var volatileImagePaths = []string{".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", "dev", "proc", "sys"}

// VolatileImagePaths returns the paths (relative to /) FileManifest skips, with their subtrees.
func VolatileImagePaths() []string { return append([]string(nil), volatileImagePaths...) }

// FileManifest exports the filesystem of image through a created (never started) container
// and returns one line per path: type, mode, uid:gid, link target or content sha256, size.
// Modification times are not part of it: the classic builder stamps every layer with the build
// time, so they can never match between two builds. Two images with the same manifest have
// the same file content, ownership and permissions.
func FileManifest(ctx context.Context, cli client.APIClient, image string) (map[string]string, error) {
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Cmd: []string{"/bin/true"},
			Labels: map[string]string{LabelManaged: "true", LabelPhase: "export"}},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return nil, fmt.Errorf("create container from %s to export it: %w", image, err)
	}
	defer cli.ContainerRemove(context.WithoutCancel(ctx), cr.ID, client.ContainerRemoveOptions{Force: true})
	rc, err := cli.ContainerExport(ctx, cr.ID, client.ContainerExportOptions{})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", image, err)
	}
	defer rc.Close()
	return tarManifest(rc)
}

func tarManifest(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read exported filesystem: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if isVolatile(name) {
			continue
		}
		var what string
		switch hdr.Typeflag {
		case tar.TypeReg:
			h := sha256.New()
			n, err := io.Copy(h, tr)
			if err != nil {
				return nil, fmt.Errorf("read %s from exported filesystem: %w", name, err)
			}
			what = fmt.Sprintf("file sha256:%s %d", hex.EncodeToString(h.Sum(nil)), n)
		case tar.TypeSymlink:
			what = "symlink " + hdr.Linkname
		case tar.TypeLink:
			what = "hardlink " + hdr.Linkname
		case tar.TypeDir:
			what = "dir"
		default:
			what = fmt.Sprintf("type%c %d:%d", hdr.Typeflag, hdr.Devmajor, hdr.Devminor)
		}
		out[name] = fmt.Sprintf("%s %o %d:%d", what, hdr.Mode&0o7777, hdr.Uid, hdr.Gid)
	}
}

func isVolatile(name string) bool {
	for _, v := range volatileImagePaths {
		if name == v || strings.HasPrefix(name, v+"/") {
			return true
		}
	}
	return false
}

// DiffManifests lists the paths whose entries differ between a and b, sorted.
func DiffManifests(a, b map[string]string) []string {
	var diff []string
	for k, va := range a {
		if vb, ok := b[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: only in first (%s)", k, va))
		} else if va != vb {
			diff = append(diff, fmt.Sprintf("%s: %s != %s", k, va, vb))
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: only in second (%s)", k, vb))
		}
	}
	sort.Strings(diff)
	return diff
}
