package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/ipa-oci/ipa-oci/images/bootdir"
	"github.com/ipa-oci/ipa-oci/images/internal/imagestest"
	"github.com/ipa-oci/ipa-oci/images/store"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestRegistryRetryIsOneLayer: each kind of registry request go-containerregistry sends for
// ipa-oci (manifest HEAD, GET and PUT, blob upload, referrers) is retried by retry.go alone. A
// registry answering 500 forever to it gets exactly 1+retries of them, and the waits logged
// are the schedule once (1, 3, 9, 27 ms here). The library's own retries (its transport's,
// its upload and PUT loops') would multiply the count.
func TestRegistryRetryIsOneLayer(t *testing.T) {
	ctx := context.Background()
	reg := testenv.StartRegistry(t)
	proxy := newFaultProxy(t, reg.Host)
	repo := proxy.Host() + "/ipa/agent"
	dir := t.TempDir()
	k, i := testenv.FakeKernel(t, dir, 64<<10), testenv.FakeInitramfs(t, dir, 64<<10)
	idx, err := imagestest.Push(ctx, reg.Host+"/ipa/agent:one", artifact.PushRequest{Kernel: k, Initramfs: i, IPAVersion: "1", BuildInfo: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	fresh := testenv.FakeKernel(t, t.TempDir(), 64<<10) // a blob the registry does not have
	for _, c := range []struct {
		name, method, suffix string
		run                  func(opts ...store.Option) error
	}{
		{"resolve", "HEAD", "/manifests/one", func(opts ...store.Option) error {
			_, err := imagestest.Pull(ctx, repo+":one", bootdir.PullOptions{Dest: t.TempDir()}, opts...)
			return err
		}},
		{"fetch manifest", "GET", "/manifests/one", func(opts ...store.Option) error {
			_, err := imagestest.FetchBuildInfo(ctx, repo+":one", "amd64", opts...)
			return err
		}},
		{"referrers", "GET", "/referrers/" + idx.Digest.String(), func(opts ...store.Option) error {
			_, err := imagestest.FetchBuildInfo(ctx, repo+":one", "amd64", opts...)
			return err
		}},
		{"push manifest", "PUT", "/manifests/two", func(opts ...store.Option) error {
			_, err := imagestest.Push(ctx, repo+":two", artifact.PushRequest{Kernel: k, Initramfs: i, IPAVersion: "1"}, opts...)
			return err
		}},
		{"push blob", "POST", "/blobs/uploads/", func(opts ...store.Option) error {
			_, err := imagestest.Push(ctx, repo+":three", artifact.PushRequest{Kernel: fresh, Initramfs: i, IPAVersion: "3"}, opts...)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy.reset()
			proxy.set(func(p *faultProxy) { p.faultMethod, p.blobSuffix, p.fail500 = c.method, c.suffix, 1<<30 })
			logger, hook := logtest.NewNullLogger()
			err := c.run(store.WithRetry(4, time.Millisecond), store.WithLogger(logger))
			if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") {
				t.Fatalf("against a registry answering %s %s with 500: err = %v, want the 500 named", c.method, c.suffix, err)
			}
			if n := proxy.count(c.method, c.suffix); n != 5 {
				t.Errorf("%s %s requests = %d, want 5 (one attempt and 4 retries)", c.method, c.suffix, n)
			}
			if waits := loggedWaits(t, hook); fmt.Sprint(waits) != "[1ms 3ms 9ms 27ms]" {
				t.Errorf("retry waits logged %v, want [1ms 3ms 9ms 27ms]", waits)
			}
		})
	}
}

// count counts the proxy's requests with method whose path ends with suffix.
func (p *faultProxy) count(method, suffix string) int {
	n := 0
	for _, r := range p.seen() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}
