// Package kernelconfig checks and builds the project's Linux 6.12 kernel configurations
// (kernel-config/x86_64.config and arm64.config, savedefconfig-style, derived from tinyconfig)
// with the shell scripts that do the work: ParseConfig and Dropped compare a configuration
// with what `make olddefconfig` made of it (ResolveConfig), BuildKernel compiles one with
// scripts/kernel-build.sh (cached by config hash), RunScript runs any of scripts/. Test and
// development code: it finds the repository with `go env GOMOD`, so it runs from inside the
// source tree only.
package kernelconfig

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Arches returns the architectures with a kernel configuration in this directory.
func Arches() []string { return []string{"x86_64", "arm64"} }

// RepoRoot returns the root of the ipa-oci source tree: the directory of the go.mod that
// `go env GOMOD` names from the working directory (a test's package directory).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("ipa-oci source tree not found: run from inside the repository")
	}
	root := filepath.Dir(mod)
	if _, err := os.Stat(filepath.Join(root, "kernel-config")); err != nil {
		return "", fmt.Errorf("%s is not the ipa-oci source tree (no kernel-config/): run from inside the repository", root)
	}
	return root, nil
}

// ConfigPath returns the path of kernel-config/<arch>.config.
func ConfigPath(arch string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "kernel-config", arch+".config"), nil
}

// Symbol is one line of a kernel configuration: CONFIG_NAME=Value, or Value "n" for
// "# CONFIG_NAME is not set".
type Symbol struct {
	Name  string
	Value string
}

// ParseConfig reads a .config or defconfig file into symbols in file order.
func ParseConfig(r io.Reader) ([]Symbol, error) {
	var out []Symbol
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "# CONFIG_") && strings.HasSuffix(line, " is not set"):
			out = append(out, Symbol{Name: strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set"), Value: "n"})
		case strings.HasPrefix(line, "CONFIG_"):
			name, val, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("malformed config line %q", line)
			}
			out = append(out, Symbol{Name: name, Value: val})
		}
	}
	return out, sc.Err()
}

// ParseConfigFile is ParseConfig on a file.
func ParseConfigFile(path string) ([]Symbol, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return syms, nil
}

// Dropped lists the symbols of want whose value differs in got (a resolved .config):
// "CONFIG_X: want y, got m" or "CONFIG_X: want y, got unset", sorted.
func Dropped(want, got []Symbol) []string {
	have := make(map[string]string, len(got))
	for _, s := range got {
		have[s.Name] = s.Value
	}
	var out []string
	for _, s := range want {
		g, ok := have[s.Name]
		if !ok {
			g = "n"
		}
		if g != s.Value {
			if !ok {
				g = "unset"
			}
			out = append(out, fmt.Sprintf("%s: want %s, got %s", s.Name, s.Value, g))
		}
	}
	sort.Strings(out)
	return out
}

// ResolveConfig runs `make olddefconfig` on kernel-config/<arch>.config against the Debian
// linux-source tarball (scripts/kernel-build.sh config) in outDir and returns the resolved
// .config path.
func ResolveConfig(ctx context.Context, arch, outDir string) (string, error) {
	out, err := RunScript(ctx, nil, nil, "kernel-build.sh", "config", arch, outDir)
	if err != nil {
		return "", fmt.Errorf("make olddefconfig for %s: %w", arch, err)
	}
	return out, nil
}

// BuildOption changes how BuildKernel builds.
type BuildOption func(*buildOptions)

type buildOptions struct {
	arch string
	log  io.Writer
}

// WithArch selects the architecture ("x86_64", the default, or "arm64").
func WithArch(arch string) BuildOption { return func(o *buildOptions) { o.arch = arch } }

// WithBuildLog copies the build script's progress messages to w.
func WithBuildLog(w io.Writer) BuildOption { return func(o *buildOptions) { o.log = w } }

// BuildKernel builds the kernel image and modules for kernel-config/<arch>.config with
// scripts/kernel-build.sh, or returns the cached build under
// $IPA_OCI_CACHE/kernel/<arch>-<hash>/. kernelPath is bzImage (x86_64) or Image (arm64);
// modulesDir holds lib/modules/<version>/ with xz-compressed modules and depmod files.
func BuildKernel(ctx context.Context, opts ...BuildOption) (kernelPath, modulesDir string, err error) {
	o := buildOptions{arch: "x86_64"}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := RunScript(ctx, o.log, nil, "kernel-build.sh", "build", o.arch)
	if err != nil {
		return "", "", fmt.Errorf("build %s kernel: %w", o.arch, err)
	}
	image := "bzImage"
	if o.arch == "arm64" {
		image = "Image"
	}
	kernelPath = filepath.Join(dir, image)
	modulesDir = filepath.Join(dir, "modules")
	for _, p := range []string{kernelPath, modulesDir} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("kernel build in %s is incomplete (remove it to rebuild): %w", dir, err)
		}
	}
	return kernelPath, modulesDir, nil
}

// RunScript runs scripts/<name> with env (KEY=value) added to the process environment and
// returns the last line of its stdout; stderr goes to logw (if not nil) and, on failure, into
// the error.
func RunScript(ctx context.Context, logw io.Writer, env []string, name string, args ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", name)
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if logw != nil {
		cmd.Stderr = io.MultiWriter(&stderr, logw)
	}
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = "..." + tail[len(tail)-4000:]
		}
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}
