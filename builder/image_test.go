package builder

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// TestBuilderImageReproducible builds Dockerfile.builder a second time without the engine's
// cache and compares the two images' exported filesystems file by file (content sha256, mode,
// owner, link targets; mtimes excluded because the classic builder stamps layers with the
// build time, and the engine-managed paths in VolatileImagePaths excluded). Both builds use
// the same apt mirror state, so this proves the recipe adds no nondeterminism of its own; it
// cannot prove that the mirror will serve the same packages tomorrow (APT_SNAPSHOT does that).
func TestBuilderImageReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the second (uncached, ~1 min) builder image build")
	}
	needEnv(t)
	ctx := context.Background()
	log := logrus.New()
	log.SetOutput(testWriter{t})
	// BUILDER_UID is passed with its default value: same content, but another recipe label, so
	// EnsureImage in concurrently running test packages never picks (and tags) this image,
	// which is removed at the end.
	id2, err := BuildImage(ctx, tenv.cli, ImageOptions{
		Dockerfile: "../Dockerfile.builder",
		BuildArgs:  map[string]string{"BASE_IMAGE": testBaseImage, "BUILDER_UID": "1000"},
		Tag:        "-",
		NoCache:    true,
		Log:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if id2 != tenv.imageID {
		defer tenv.cli.ImageRemove(context.WithoutCancel(ctx), id2, client.ImageRemoveOptions{PruneChildren: true})
	}
	a, err := FileManifest(ctx, tenv.cli, tenv.imageID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FileManifest(ctx, tenv.cli, id2)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 10000 {
		t.Fatalf("manifest of %s has only %d entries", tenv.imageID, len(a))
	}
	t.Logf("compared %d paths of %s and %s (image IDs differ: %v; they carry layer mtimes and creation times)", len(a), tenv.imageID, id2, tenv.imageID != id2)
	if d := DiffManifests(a, b); len(d) > 0 {
		if len(d) > 50 {
			d = append(d[:50], "...")
		}
		t.Errorf("builder image is not reproducible, %d paths differ:\n%s", len(DiffManifests(a, b)), strings.Join(d, "\n"))
	}
	// The manifest does see content changes: a file's hash is part of its entry.
	for p, e := range a {
		if strings.HasPrefix(e, "file sha256:") {
			b[p] = "file sha256:0 0 644 0:0"
			if len(DiffManifests(a, b)) != 1 {
				t.Errorf("DiffManifests missed a changed file")
			}
			break
		}
	}
}

func TestBuilderImageContents(t *testing.T) {
	needEnv(t)
	ii, err := tenv.cli.ImageInspect(context.Background(), tenv.imageID)
	if err != nil {
		t.Fatal(err)
	}
	if ii.Config.User != "builder" {
		t.Errorf("image user %q, want the non-root builder", ii.Config.User)
	}
	env := strings.Join(ii.Config.Env, " ")
	if !strings.Contains(env, "LC_ALL=C.UTF-8") {
		t.Errorf("image env %s lacks LC_ALL=C.UTF-8", env)
	}
	m, err := FileManifest(context.Background(), tenv.cli, tenv.imageID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/bin/make", "usr/bin/gcc-12", "usr/bin/g++-12", "usr/bin/patch", "usr/bin/cpio", "usr/bin/rsync",
		"usr/bin/unzip", "usr/bin/file", "usr/bin/bc", "usr/bin/wget", "usr/bin/git", "usr/bin/python3.11", "usr/bin/perl",
		"usr/bin/bzip2", "usr/bin/xz", "usr/bin/which", "home/builder",
		"usr/lib/python3/dist-packages/packaging/tags.py"} { // the lock step's resolver imports it
		if _, ok := m[p]; !ok {
			t.Errorf("builder image lacks /%s", p)
		}
	}
	for p := range m {
		if strings.HasPrefix(p, "var/lib/apt/lists/") && !strings.HasSuffix(p, "/") && p != "var/lib/apt/lists/partial" && p != "var/lib/apt/lists/lock" {
			t.Errorf("apt list left in the image: /%s", p)
		}
	}
}
