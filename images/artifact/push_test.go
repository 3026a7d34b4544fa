package artifact_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	"github.com/opencontainers/go-digest"
)

// TestPushConcurrentArchitectures runs 20 rounds of an amd64 and an arm64 push to one tag at
// the same time, as a CI matrix does, against a real Distribution registry: after each round
// the tag's index lists both architectures with the files each push sent, and each
// architecture's build info is found from the tag.
func TestPushConcurrentArchitectures(t *testing.T) {
	reg := testenv.StartRegistry(t)
	type input struct {
		kernel, initramfs string
		layers            map[string]digest.Digest // file name in DIR -> layer digest
	}
	in := map[string]input{}
	for _, arch := range []string{"amd64", "arm64"} {
		dir := t.TempDir()
		k, i := testenv.FakeKernel(t, dir, 32<<10), testenv.FakeInitramfs(t, dir, 64<<10)
		kd, _, _ := content.FileDigest(context.Background(), k)
		id, _, _ := content.FileDigest(context.Background(), i)
		in[arch] = input{k, i, map[string]digest.Digest{
			artifact.FileName(artifact.Kernel, arch): kd, artifact.FileName(artifact.Initramfs, arch): id}}
	}
	ctx := context.Background()
	lost := 0
	for round := range 20 {
		ref := fmt.Sprintf("%s/ipa/agent:r%d", reg.Host, round)
		version := fmt.Sprintf("1.%d", round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := map[string]error{}
		var mu sync.Mutex
		for arch, files := range in {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := imagestest.Push(ctx, ref, artifact.PushRequest{Arch: arch, Kernel: files.kernel, Initramfs: files.initramfs,
					IPAVersion: version, BuildInfo: []byte(`{"arch":"` + arch + `"}`)})
				mu.Lock()
				errs[arch] = err
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		for arch, err := range errs {
			if err != nil {
				t.Fatalf("round %d: push %s: %v", round, arch, err)
			}
		}
		insp, err := imagestest.Inspect(ctx, ref)
		if err != nil {
			t.Fatalf("round %d: inspect: %v", round, err)
		}
		got := map[string]digest.Digest{}
		var archs []string
		for _, p := range insp.Platforms {
			archs = append(archs, p.Arch)
			for _, f := range p.Files {
				got[f.Name] = f.Layer.Digest
			}
		}
		want := map[string]digest.Digest{}
		for _, i := range in {
			for n, d := range i.layers {
				want[n] = d
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			lost++
			t.Errorf("round %d: the tag lists %v, %d of the 4 files pushed; want amd64 and arm64 with all 4", round, archs, matching(got, want))
			continue
		}
		for _, arch := range []string{"amd64", "arm64"} {
			info, err := imagestest.FetchBuildInfo(ctx, ref, arch)
			if err != nil || string(info) != `{"arch":"`+arch+`"}` {
				t.Errorf("round %d: build info for %s: %s, %v", round, arch, info, err)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of 20 rounds lost an architecture", lost)
	}
}

// matching counts the names whose digest in got is the one in want.
func matching(got, want map[string]digest.Digest) int {
	n := 0
	for k, v := range want {
		if got[k] == v {
			n++
		}
	}
	return n
}

func TestPushSameFilesSameDigest(t *testing.T) {
	reg := testenv.StartRegistry(t)
	src := t.TempDir()
	k, i := testenv.FakeKernel(t, src, 10<<10), testenv.FakeInitramfs(t, src, 10<<10)
	var digests []string
	for n, tag := range []string{"a", "b"} {
		_ = n
		d, err := imagestest.Push(context.Background(), reg.Host+"/ipa/agent:"+tag, artifact.PushRequest{Kernel: k, Initramfs: i, IPAVersion: "1.0"})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Fatalf("same files, different index digests: %v", digests)
	}
}
