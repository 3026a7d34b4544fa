package artifact

import (
	"testing"
)

func TestFileNames(t *testing.T) {
	for _, c := range []struct {
		c          Component
		arch, want string
	}{
		{Kernel, "amd64", "ironic-python-agent.kernel"},
		{Initramfs, "amd64", "ironic-python-agent.initramfs"},
		{Kernel, "arm64", "ironic-python-agent_aarch64.kernel"},
		{Initramfs, "arm64", "ironic-python-agent_aarch64.initramfs"},
	} {
		if got := FileName(c.c, c.arch); got != c.want {
			t.Errorf("FileName(%s, %s) = %s, want %s", c.c, c.arch, got, c.want)
		}
	}
}
