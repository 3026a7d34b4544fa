// Package arches holds the architectures ipa-oci builds, under their two names: the OCI one
// (amd64, arm64: image indexes, tags, flags) and the kernel's (x86_64, aarch64: uname -m,
// Buildroot defconfigs, file names). builder/ and images/ share it.
package arches

import "fmt"

var names = []struct{ oci, uname string }{
	{"amd64", "x86_64"},
	{"arm64", "aarch64"},
}

// All returns the OCI names of the supported architectures, amd64 first.
func All() []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n.oci
	}
	return out
}

// Validate accepts exactly an OCI name (amd64, arm64): what a published artifact says.
func Validate(a string) error {
	for _, n := range names {
		if a == n.oci {
			return nil
		}
	}
	return fmt.Errorf("architecture %q: use amd64 or arm64", a)
}

// Normalize maps what a user may write to the OCI name: amd64 (also x86_64, and "", the
// default) or arm64 (also aarch64).
func Normalize(a string) (string, error) {
	if a == "" {
		return names[0].oci, nil
	}
	for _, n := range names {
		if a == n.oci || a == n.uname {
			return n.oci, nil
		}
	}
	return "", fmt.Errorf("architecture %q: use amd64 (x86_64) or arm64 (aarch64)", a)
}

// Uname maps an OCI name to the kernel's machine name (uname -m); other values come back
// unchanged.
func Uname(a string) string {
	for _, n := range names {
		if a == n.oci {
			return n.uname
		}
	}
	return a
}
