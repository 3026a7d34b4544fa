package store_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// roundTrip pushes two architectures with build info to repo (a registry "HOST/REPO" or
// "oci:DIR"), pulls both into one DIR and checks files, records and build info.
func roundTrip(t *testing.T, repo string) (indexDigest string) {
	ctx := context.Background()
	src := t.TempDir()
	k, i := testenv.FakeKernel(t, src, 100<<10), testenv.FakeInitramfs(t, src, 512<<10)
	armK, armI := testenv.FakeKernel(t, t.TempDir(), 90<<10), testenv.FakeInitramfs(t, t.TempDir(), 300<<10)
	ref := repo + ":2025.2"
	info := []byte(`{"arch":"amd64","ipa_commit":"abc"}`)
	if _, err := imagestest.Push(ctx, ref, artifact.PushRequest{Kernel: k, Initramfs: i, IPAVersion: "10.1.0", BuildInfo: info, Tags: []string{"latest"}}); err != nil {
		t.Fatal(err)
	}
	armInfo := []byte(`{"arch":"arm64"}`)
	idx, err := imagestest.Push(ctx, ref, artifact.PushRequest{Arch: "arm64", Kernel: armK, Initramfs: armI, IPAVersion: "10.1.0", BuildInfo: armInfo})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		res, err := imagestest.Pull(ctx, ref, bootdir.PullOptions{Dest: dir, Arch: arch})
		if err != nil {
			t.Fatalf("pull %s: %v", arch, err)
		}
		if res.Record.IndexDigest != idx.Digest {
			t.Fatalf("pulled index %s, pushed %s", res.Record.IndexDigest, idx.Digest)
		}
	}
	testenv.AssertServes(t, dir, k, i)
	if string(testenv.MustRead(t, filepath.Join(dir, "ironic-python-agent_aarch64.kernel"))) != string(testenv.MustRead(t, armK)) {
		t.Fatal("arm64 kernel differs")
	}
	// Build info of both architectures hangs off the merged index; the per-arch tag has its own.
	for arch, want := range map[string][]byte{"amd64": info, "arm64": armInfo} {
		got, err := imagestest.FetchBuildInfo(ctx, ref, arch)
		if err != nil || string(got) != string(want) {
			t.Fatalf("build info %s = %s, %v; want %s", arch, got, err, want)
		}
	}
	if got, err := imagestest.FetchBuildInfo(ctx, repo+":10.1.0-arm64", "arm64"); err != nil || string(got) != string(armInfo) {
		t.Fatalf("build info on per-arch tag = %s, %v", got, err)
	}
	// The extra tag and the per-arch tags resolve.
	for _, tag := range []string{"latest", "10.1.0-amd64", "10.1.0-arm64"} {
		in, err := imagestest.Inspect(ctx, repo+":"+tag)
		if err != nil {
			t.Fatalf("inspect %s: %v", tag, err)
		}
		if tag == "10.1.0-arm64" && (len(in.Platforms) != 1 || in.Platforms[0].Arch != "arm64") {
			t.Fatalf("per-arch tag %s lists %+v", tag, in.Platforms)
		}
	}
	bad, err := imagestest.Verify(ctx, dir, ref)
	if err != nil || len(bad) != 0 {
		t.Fatalf("verify: %v %v", bad, err)
	}
	return idx.Digest.String()
}

func TestRoundTripDistribution(t *testing.T) {
	reg := testenv.StartRegistry(t)
	idx := roundTrip(t, reg.Host+"/ipa/agent")
	// Distribution has no referrers API: build info must sit behind the sha256-<hex> fallback tag.
	resp, err := http.Get("http://" + reg.Host + "/v2/ipa/agent/referrers/" + idx)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("Distribution referrers API answered %d; the test assumes it has none", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+reg.Host+"/v2/ipa/agent/manifests/sha256-"+strings.TrimPrefix(idx, "sha256:"), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageIndex)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var fallback ocispec.Index
	json.NewDecoder(resp.Body).Decode(&fallback)
	if resp.StatusCode != 200 || len(fallback.Manifests) != 2 || fallback.Manifests[0].ArtifactType != artifact.ArtifactTypeBuildInfo {
		t.Fatalf("fallback tag: status %d, %+v", resp.StatusCode, fallback.Manifests)
	}
}

func TestRoundTripReferrersAPI(t *testing.T) {
	// go-containerregistry's in-memory registry serves the referrers API: no fallback tag.
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	idx := roundTrip(t, host+"/ipa/agent")
	resp, err := http.Get(srv.URL + "/v2/ipa/agent/manifests/sha256-" + strings.TrimPrefix(idx, "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("fallback tag written although the registry has the referrers API (status %d)", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/v2/ipa/agent/referrers/" + idx)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// (This registry reports the config media type as artifactType; the arch annotations show
	// both build-info referrers are listed.)
	if !strings.Contains(string(body), `"org.openstack.ironic-python-agent.arch":"amd64"`) || !strings.Contains(string(body), `"org.openstack.ironic-python-agent.arch":"arm64"`) {
		t.Fatalf("referrers API does not list both build infos: %s", body)
	}
}

func TestRoundTripOCILayout(t *testing.T) {
	dir := t.TempDir()
	roundTrip(t, "oci:"+dir)
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatal(err)
	}
}

// TestPushPullWithCredentials runs against a registry that demands HTTP basic auth: without
// credentials push fails naming the registry; with them in a docker config (DOCKER_CONFIG, read
// by go-containerregistry's default keychain, as docker login writes it) push and pull work.
func TestPushPullWithCredentials(t *testing.T) {
	reg := testenv.StartRegistryWithAuth(t, "ci-bot", "s3cret")
	ref := reg.Host + "/ipa/agent:auth"
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	src := t.TempDir()
	k, i := testenv.FakeKernel(t, src, 8<<10), testenv.FakeInitramfs(t, src, 8<<10)
	req := artifact.PushRequest{Kernel: k, Initramfs: i, IPAVersion: "1"}
	_, err := imagestest.Push(context.Background(), ref, req, store.WithRetry(0, 0))
	if err == nil || !strings.Contains(err.Error(), reg.Host) || !strings.Contains(err.Error(), "docker login "+reg.Host) {
		t.Fatalf("push without credentials: err = %v, want an unauthorized error naming %s", err, reg.Host)
	}
	t.Logf("without credentials: %v", err)
	auth := base64.StdEncoding.EncodeToString([]byte("ci-bot:s3cret"))
	cfg := `{"auths":{"` + reg.Host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := imagestest.Push(context.Background(), ref, req); err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	dir := t.TempDir()
	if _, err := imagestest.Pull(context.Background(), ref, bootdir.PullOptions{Dest: dir}); err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	testenv.AssertServes(t, dir, k, i)
}
