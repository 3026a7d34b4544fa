package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The extras a user adds to every container of a build: make variables (Options.MakeArgs) and
// host environment variables (Options.Env). Both are checked before anything runs, recorded in
// build-info, part of the fetch stamp's key, and replayed by a rebuild.

// makeVarRE is a make variable name as ipa-oci accepts it (Buildroot's and kbuild's are all
// of this form).
var makeVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envNameRE is an environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedMakeVars are the make variables ipa-oci sets itself, with what sets them.
var reservedMakeVars = map[string]string{
	"O":                            "ipa-oci sets O=" + ContainerOutput + " (Buildroot's output directory: set output)",
	"BR2_EXTERNAL":                 "ipa-oci sets BR2_EXTERNAL=" + ContainerExternal + " (set external)",
	"BR2_IPA_GIT_URL":              "ipa-oci sets it from ipa.repo",
	"BR2_IPA_GIT_REF":              "ipa-oci sets it to the locked IPA commit (ipa.ref)",
	"BR2_IPA_REQUIREMENTS_GIT_URL": "ipa-oci sets it from requirements.repo",
	"BR2_IPA_REQUIREMENTS_GIT_REF": "ipa-oci sets it from requirements.ref",
	WheelsMkVar:                    "ipa-oci sets it to the wheel list generated from the lock",
	"BR2_JLEVEL":                   "ipa-oci sets it from jobs",
	"BR2_DL_DIR":                   "ipa-oci sets BR2_DL_DIR=" + ContainerDL + " (set dlDir)",
	"BR2_CCACHE_DIR":               "ipa-oci mounts the ccache directory at " + ContainerCcache + " (set ccacheDir)",
	"BR_CACHE_DIR":                 "ipa-oci sets BR_CACHE_DIR=" + ContainerCcache + " (set ccacheDir)",
	"SOURCE_DATE_EPOCH":            "ipa-oci sets it from the lock (sourceDateEpoch)",
	"BR2_DEFCONFIG":                "`ipa-oci make savedefconfig` sets it to write the defconfig back",
	"LINUX_KCONFIG_FILE":           "`ipa-oci make linux-update-defconfig` sets it to write the kernel config back",
	"BUSYBOX_KCONFIG_FILE":         "`ipa-oci make busybox-update-config` sets it to write the BusyBox config back",
	"MAKEFLAGS":                    "make options are not passed through (run them in `ipa-oci shell`)",
}

// CheckMakeArgs checks make variables (Options.MakeArgs, MakeOptions.Vars), named in errors
// as what (the caller's word for them, e.g. "make argument"): each must be NAME=VALUE with a plain variable name, a value without
// newlines, and not one of the variables ipa-oci sets itself.
func CheckMakeArgs(what string, args []string) error {
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			return fmt.Errorf("%s %q: use NAME=VALUE (a make variable, e.g. V=1); make targets and options are not accepted here", what, a)
		case !makeVarRE.MatchString(name):
			return fmt.Errorf("%s %q: %q is not a make variable name (letters, digits, _)", what, a, name)
		case strings.ContainsAny(value, "\n\r\x00"):
			return fmt.Errorf("%s %q: the value has a newline or NUL byte", what, name)
		}
		if why, ok := reservedMakeVars[name]; ok {
			return fmt.Errorf("%s %s=...: %s is not overridable: %s", what, name, name, why)
		}
	}
	return nil
}

// reservedEnv are the environment variables ipa-oci sets (or keeps) in the containers; a
// name ending in "_" is a prefix.
var reservedEnv = map[string]string{
	"HOME":                "ipa-oci sets HOME=/tmp",
	"LC_ALL":              "ipa-oci sets LC_ALL=C.UTF-8",
	"LANG":                "ipa-oci sets LANG=C.UTF-8",
	"TERM":                "ipa-oci sets TERM (dumb, or the terminal's for `ipa-oci make`/`shell` on a terminal)",
	"PATH":                "the container keeps the builder image's PATH",
	"SOURCE_DATE_EPOCH":   "ipa-oci sets it from the lock (sourceDateEpoch)",
	"BR2_DL_DIR":          "ipa-oci sets BR2_DL_DIR=" + ContainerDL + " (set dlDir)",
	"BR_CACHE_DIR":        "ipa-oci sets BR_CACHE_DIR=" + ContainerCcache + " (set ccacheDir)",
	"IPA_OCI_":            "ipa-oci sets the IPA_OCI_* variables",
	"GIT_CONFIG_":         "ipa-oci sets GIT_CONFIG_* (safe.directory for the read-only mirrors)",
	"GIT_CONFIG_COUNT":    "ipa-oci sets GIT_CONFIG_* (safe.directory for the read-only mirrors)",
	"GIT_CONFIG_SYSTEM":   "ipa-oci sets GIT_CONFIG_* (safe.directory for the read-only mirrors)",
	"GIT_CONFIG_GLOBAL":   "ipa-oci sets GIT_CONFIG_* (safe.directory for the read-only mirrors)",
	"GIT_CONFIG_NOSYSTEM": "ipa-oci sets GIT_CONFIG_* (safe.directory for the read-only mirrors)",
}

// CheckEnvNames checks the names of host environment variables passed into the containers
// (Options.Env), named in errors as what (the caller's word, e.g. "environment variable"):
// each a plain variable name, set in hostEnv, not a proxy
// variable (those pass anyway), not given twice, and none of the variables ipa-oci sets.
func CheckEnvNames(what string, names, hostEnv []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if !envNameRE.MatchString(n) {
			return fmt.Errorf("%s %q: give the name of a host environment variable (letters, digits, _), not NAME=VALUE; its value is taken from the environment", what, n)
		}
		if seen[n] {
			return fmt.Errorf("%s %s: given twice", what, n)
		}
		seen[n] = true
		for _, p := range proxyVars {
			if n == p || n == strings.ToUpper(p) {
				return fmt.Errorf("%s %s: proxy variables pass into the containers anyway", what, n)
			}
		}
		for k, why := range reservedEnv {
			if n == k || (strings.HasSuffix(k, "_") && strings.HasPrefix(n, k)) {
				return fmt.Errorf("%s %s: not overridable: %s", what, n, why)
			}
		}
		if _, ok := lookupEnv(hostEnv, n); !ok {
			return fmt.Errorf("%s %s: %s is not set in the environment; set it (its value is passed into the builder containers)", what, n, n)
		}
	}
	return nil
}

// lookupEnv finds name in env (KEY=VALUE entries; the last one wins, as in os.Environ).
func lookupEnv(env []string, name string) (string, bool) {
	v, found := "", false
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v, found = val, true
		}
	}
	return v, found
}

// extraEnv is NAME=VALUE for each --env name, from the host environment.
func (b *build) extraEnv() []string {
	var out []string
	for _, n := range b.o.Env {
		v, _ := lookupEnv(b.o.HostEnv, n)
		out = append(out, n+"="+v)
	}
	return out
}

// recordExtras puts the make arguments and the --env names with their values' sha256 into
// build-info, sorted by name (the order of --env flags does not change the build).
func (b *build) recordExtras() {
	in := &b.info.Inputs
	in.MakeArgs = append([]string(nil), b.o.MakeArgs...)
	in.Env = envInputs(b.o.Env, b.o.HostEnv)
}

func envInputs(names, hostEnv []string) []EnvInput {
	var out []EnvInput
	for _, n := range names {
		v, _ := lookupEnv(hostEnv, n)
		out = append(out, EnvInput{Name: n, SHA256: sha256Hex([]byte(v))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// checkRecordedEnv checks that hostEnv has every variable a recorded build passed with
// --env, with the same value (by its sha256), and returns the names.
func checkRecordedEnv(recorded []EnvInput, hostEnv []string) ([]string, error) {
	var names []string
	for _, e := range recorded {
		v, ok := lookupEnv(hostEnv, e.Name)
		if !ok {
			return nil, fmt.Errorf("the build passed the environment variable %s into its containers: set %s to the same value (sha256 %s) to rebuild", e.Name, e.Name, e.SHA256)
		}
		if got := sha256Hex([]byte(v)); got != e.SHA256 {
			return nil, fmt.Errorf("the build passed %s with another value (sha256 %s; yours is %s): set %s to the value the build used", e.Name, e.SHA256, got, e.Name)
		}
		names = append(names, e.Name)
	}
	return names, nil
}
