package bootdir

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// runHook runs po.Exec through sh after an update, with the update described in the environment.
func runHook(ctx context.Context, po PullOptions, rec *Record) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", po.Exec)
	cmd.Dir = po.Dest
	cmd.Env = append(os.Environ(), "IPA_OCI_DEST="+po.Dest, "IPA_OCI_ARCH="+rec.Arch,
		"IPA_OCI_INDEX_DIGEST="+rec.IndexDigest.String(), "IPA_OCI_VERSION="+rec.IPAVersion)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("the update hook %q failed: %w: %s", po.Exec, err, strings.TrimSpace(string(out)))
	}
	return nil
}
