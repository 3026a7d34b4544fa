package arches

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"": "amd64", "amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"} {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"riscv64", "AMD64", "x86-64"} {
		if _, err := Normalize(bad); err == nil || !strings.Contains(err.Error(), `architecture "`+bad+`": use amd64 (x86_64) or arm64 (aarch64)`) {
			t.Errorf("Normalize(%q): %v", bad, err)
		}
	}
	for _, a := range All() {
		if err := Validate(a); err != nil {
			t.Errorf("Validate(%q): %v", a, err)
		}
	}
	for _, bad := range []string{"", "x86_64", "aarch64", "riscv64"} {
		if err := Validate(bad); err == nil || err.Error() != `architecture "`+bad+`": use amd64 or arm64` {
			t.Errorf("Validate(%q): %v", bad, err)
		}
	}
	if got := strings.Join(All(), ","); got != "amd64,arm64" {
		t.Errorf("All() = %s", got)
	}
	for in, want := range map[string]string{"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64"} {
		if got := Uname(in); got != want {
			t.Errorf("Uname(%q) = %q, want %q", in, got, want)
		}
	}
}
