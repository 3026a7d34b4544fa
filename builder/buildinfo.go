package builder

import (
	"encoding/json"
	"fmt"
	"os"
)

// BuildInfoSchemaVersion is the version of the build-info.json layout.
const BuildInfoSchemaVersion = 1

// BuildInfo is OUTPUT/build-info.json: every input that decides the output bytes, every
// output's digest, and Buildroot's show-info (the SBOM input). It holds no timestamps or host
// paths, so two builds of the same inputs write the same file.
type BuildInfo struct {
	SchemaVersion int          `json:"schemaVersion"`
	Inputs        Inputs       `json:"inputs"`
	Outputs       []OutputFile `json:"outputs"`
	// Lock is the lock the build used (ipa-oci.lock): `ipa-oci rebuild` replays it.
	Lock     *Lock           `json:"lock,omitempty"`
	ShowInfo json.RawMessage `json:"showInfo,omitempty"`
}

// Inputs are the pinned inputs of a build.
type Inputs struct {
	Buildroot       BuildrootInput `json:"buildroot"`
	External        TreeInput      `json:"external"`
	KernelConfig    *TreeInput     `json:"kernelConfig,omitempty"`
	Defconfig       string         `json:"defconfig"`
	Arch            string         `json:"arch"`
	IPA             *ResolvedGit   `json:"ipa,omitempty"`
	Requirements    *ResolvedGit   `json:"requirements,omitempty"`
	BuilderImage    ImageInput     `json:"builderImage"`
	SourceDateEpoch int64          `json:"sourceDateEpoch"`
	LegalInfo       bool           `json:"legalInfo,omitempty"`
	// MakeArgs are the extra make variables of every make call (--make-arg), verbatim.
	MakeArgs []string `json:"makeArgs,omitempty"`
	// Env are the host variables passed into the containers beyond the allow-list (--env):
	// the name and the sha256 of the value, which may be a secret and is not recorded.
	Env []EnvInput `json:"env,omitempty"`
}

// EnvInput is one variable passed with --env: its name and the sha256 (hex) of its value.
type EnvInput struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// BuildrootInput is the Buildroot release (URL + tarball sha256) or a local tree (its hash).
type BuildrootInput struct {
	Version    string `json:"version,omitempty"`
	URL        string `json:"url,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	TreeSHA256 string `json:"treeSha256"`
	Local      bool   `json:"local,omitempty"`
}

// TreeInput is a directory identified by its TreeHash.
type TreeInput struct {
	SHA256 string `json:"sha256"`
}

// ImageInput is the builder image: the reference used and its image ID.
type ImageInput struct {
	Ref string `json:"ref"`
	ID  string `json:"id"`
}

// OutputFile is one artifact in OUTPUT with its sha256 and size.
type OutputFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ReadBuildInfo parses a build-info.json.
func ReadBuildInfo(b []byte) (*BuildInfo, error) {
	var bi BuildInfo
	if err := json.Unmarshal(b, &bi); err != nil {
		return nil, fmt.Errorf("parse build-info: %w", err)
	}
	if bi.SchemaVersion != BuildInfoSchemaVersion {
		return nil, fmt.Errorf("build-info schemaVersion %d: this ipa-oci reads %d", bi.SchemaVersion, BuildInfoSchemaVersion)
	}
	return &bi, nil
}

// ReadBuildInfoFile parses the build-info.json at path.
func ReadBuildInfoFile(path string) (*BuildInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read build-info: %w", err)
	}
	return ReadBuildInfo(b)
}

// Output returns the output named name, or nil.
func (bi *BuildInfo) Output(name string) *OutputFile {
	for i := range bi.Outputs {
		if bi.Outputs[i].Name == name {
			return &bi.Outputs[i]
		}
	}
	return nil
}
