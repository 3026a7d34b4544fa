package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

func TestBaseImage(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile.builder")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		df   string
		args map[string]string
		want string
	}{
		{string(df), nil, "debian:bookworm-20251229@sha256:4216e8fe27fdd803d2822d08ed9de39825a41a47e34c32b71a23ac074f91eaf4"},
		{string(df), map[string]string{"BASE_IMAGE": "local/base:1"}, "local/base:1"},
		{"ARG REG=r.example\nARG TAG\nFROM --platform=linux/amd64 $REG/debian:${TAG} AS base\nFROM scratch\n", map[string]string{"TAG": "12"}, "r.example/debian:12"},
		{"# no FROM\nRUN true\n", nil, ""},
	} {
		if got := baseImage([]byte(tc.df), tc.args); got != tc.want {
			t.Errorf("baseImage(%q, %v) = %q, want %q", tc.df, tc.args, got, tc.want)
		}
	}
}

// TestBuildImagePullFailureHint: a base image the engine cannot pull (a registry address on
// the loopback where nothing listens, as unreachable as any registry on an air-gapped host)
// fails with the engine's own reason and says how to build from a local base; a build that
// fails after FROM, with its base present, does not get that hint.
func TestBuildImagePullFailureHint(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	base := fmt.Sprintf("127.0.0.1:1/ipa-oci/no-such-base:%d", os.Getpid())
	_, err := BuildImage(ctx, tenv.cli, ImageOptions{
		Dockerfile: "../Dockerfile.builder", BuildArgs: map[string]string{"BASE_IMAGE": base}, Tag: "-",
	})
	t.Logf("%s: %v", tenv.engine, err)
	if err == nil {
		t.Fatal("built from an unreachable base image")
	}
	for _, want := range []string{"pull base image " + base + ": ", "connection refused", "set the build argument BASE_IMAGE=", "podman load"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}

	df := filepath.Join(t.TempDir(), "Dockerfile")
	mustWrite(t, df, "ARG BASE_IMAGE=unused\nFROM ${BASE_IMAGE}\nRUN echo ipa-oci-failing-step; exit 3\n")
	_, err = BuildImage(ctx, tenv.cli, ImageOptions{Dockerfile: df, BuildArgs: map[string]string{"BASE_IMAGE": testBaseImage}, Tag: "-"})
	t.Logf("%s: %v", tenv.engine, err)
	if err == nil || !strings.Contains(err.Error(), "ipa-oci-failing-step") || strings.Contains(err.Error(), "pull base image") || strings.Contains(err.Error(), "build argument BASE_IMAGE=") {
		t.Errorf("a failing RUN step on a present base: %v", err)
	}
}
