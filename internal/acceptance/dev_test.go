package acceptance

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

func TestDevIronic(t *testing.T) {
	if os.Getenv("DEV_IRONIC") == "" {
		t.Skip()
	}
	ctx := context.Background()
	ca := testenv.NewCA(t, GuestHost)
	ir, err := StartIronic(ctx, os.Getenv("DEV_IRONIC"), t.TempDir(), ca.CertFile, IronicConfig{FastTrack: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ir.Stop()
	n, err := ir.CreateNode(ctx, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, n.UUID, map[string]any{"op": "add", "path": "/driver_info/deploy_kernel", "value": "oci://10.0.2.2:5443/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"}); err != nil {
		t.Fatal(err)
	}
	out, err := ir.Baremetal(ctx, "node", "show", n.UUID, "-f", "json")
	t.Log(out, err)
	time.Sleep(time.Second)
	t.Log(ir.LogTail(3000))
}
