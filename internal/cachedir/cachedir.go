// Package cachedir names ipa-oci's cache directory, the one rule every Go caller uses and
// scripts/cache-dir.sh repeats for the shell scripts: $IPA_OCI_CACHE if set, else
// $XDG_CACHE_HOME/ipa-oci if XDG_CACHE_HOME is an absolute path (a relative one is ignored,
// as the XDG base directory specification says), else $HOME/.cache/ipa-oci.
package cachedir

import (
	"errors"
	"os"
	"path/filepath"
)

// Dir returns the cache directory (it may not exist yet).
func Dir() (string, error) {
	if d := os.Getenv("IPA_OCI_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "ipa-oci"), nil
	}
	if h := os.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "ipa-oci"), nil
	}
	return "", errors.New("no cache directory: set IPA_OCI_CACHE (or HOME)")
}
