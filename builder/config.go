package builder

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// ConfigFileName is the name of the build configuration next to the external tree.
const ConfigFileName = "ipa-oci.yaml"

// Config is ipa-oci.yaml: the pinned inputs of a build. Command-line flags override it field
// by field. Relative paths are relative to the file's directory.
type Config struct {
	Buildroot    BuildrootConfig `json:"buildroot"`
	External     string          `json:"external,omitempty"`     // BR2_EXTERNAL tree (default buildroot-external)
	KernelConfig string          `json:"kernelConfig,omitempty"` // kernel config directory, mounted at /ipa/kernel-config
	Defconfig    string          `json:"defconfig,omitempty"`    // NAME_defconfig in the external tree's configs/
	Arch         string          `json:"arch,omitempty"`         // amd64 (x86_64) or arm64 (aarch64)
	IPA          GitSource       `json:"ipa"`
	Requirements GitSource       `json:"requirements"`
	Builder      BuilderConfig   `json:"builder"`
	Jobs         int             `json:"jobs,omitempty"`
	Output       string          `json:"output,omitempty"`
	DLDir        string          `json:"dlDir,omitempty"`
	CcacheDir    string          `json:"ccacheDir,omitempty"`
	// SourceDateEpoch, when set, overrides the default (the IPA commit's committer time).
	SourceDateEpoch int64 `json:"sourceDateEpoch,omitempty"`
	// HostNetwork runs the fetch phase (and the lock step) in the host's network namespace
	// instead of the engine's default bridge network (for engines without one: dockerd
	// --bridge=none).
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// PythonIndex is the PEP 503 "simple" index `ipa-oci lock` resolves the agent's wheels
	// against (default DefaultPythonIndex): a mirror or a private index.
	PythonIndex string `json:"pythonIndex,omitempty"`
	// Env names host environment variables passed into the builder containers on top of the
	// proxy variables (--env); MakeArgs are NAME=VALUE make variables added to every make call
	// (--make-arg). Both are recorded in build-info.
	Env      []string `json:"env,omitempty"`
	MakeArgs []string `json:"makeArgs,omitempty"`
}

// BuildrootConfig names the Buildroot release: a tarball URL and its sha256, or a local tree.
type BuildrootConfig struct {
	Version string `json:"version,omitempty"`
	URL     string `json:"url,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Src     string `json:"src,omitempty"` // local checkout instead of URL+sha256
}

// GitSource is a git repository and a ref (branch, tag or commit ID). Commit, when set, pins
// the commit the ref is taken at (a lock or a rebuild passes the recorded one): it is what is
// fetched and built, while Ref stays the name the build sees (and records).
type GitSource struct {
	Repo   string `json:"repo,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// BuilderConfig pins the builder image: Image is what to run, ID the image ID it must have.
type BuilderConfig struct {
	Image string `json:"image,omitempty"`
	ID    string `json:"id,omitempty"`
}

// LoadConfig reads an ipa-oci.yaml and makes its relative paths absolute.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read build config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parse build config %s: %w", path, err)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if c.External == "" {
		c.External = "buildroot-external"
	}
	for _, p := range []*string{&c.External, &c.KernelConfig, &c.Output, &c.DLDir, &c.CcacheDir, &c.Buildroot.Src} {
		abs(p)
	}
	return &c, nil
}
