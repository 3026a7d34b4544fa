// Package store is where artifacts are stored: a repository in an OCI distribution registry
// (reached through go-containerregistry) or an OCI image layout directory. Both implement
// content.Target, so push, pull and inspect are written once against the small interfaces of
// package content; Parse turns a reference string into a target and a content.Reference. All
// registry retries happen here, under the one policy of retry.go.
package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/ipa-oci/ipa-oci/images/content"
	"github.com/opencontainers/go-digest"
)

// ErrHandshake matches the error of an operation whose registry handshake (the /v2/ ping and
// token exchange) failed: a wrong host, HTTPS against an HTTP registry, or credentials.
var ErrHandshake = errors.New("registry handshake failed")

// Parse parses HOST[:PORT]/REPO:TAG, HOST[:PORT]/REPO@sha256:..., or oci:DIR:TAG /
// oci:DIR@sha256:... (an OCI image layout directory), and returns the target it names with the
// tag or digest in it.
func Parse(s string, opts ...Option) (content.Target, content.Reference, error) {
	o := makeOptions(opts...)
	if rest, ok := strings.CutPrefix(s, "oci:"); ok {
		return parseLayoutReference(s, rest)
	}
	return parseRegistryReference(s, o)
}

func parseLayoutReference(raw, rest string) (content.Target, content.Reference, error) {
	dir, id := rest, "latest"
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		dir, id = rest[:i], rest[i+1:]
	} else if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i:], "/") {
		dir, id = rest[:i], rest[i+1:]
	}
	if dir == "" {
		return nil, content.Reference{}, fmt.Errorf("reference %q: oci: needs a directory, as in oci:/srv/ipa-layout:2024.2", raw)
	}
	ref := content.Reference{Name: raw}
	if d, err := digest.Parse(id); err == nil {
		ref.Digest = d
	} else if strings.Contains(id, ":") {
		return nil, content.Reference{}, fmt.Errorf("reference %q: bad digest %q: %v", raw, id, err)
	} else {
		ref.Tag = id
	}
	return newLayout(dir), ref, nil
}

func parseRegistryReference(s string, o *options) (content.Target, content.Reference, error) {
	var nopts []name.Option
	if o.plainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(s, nopts...)
	if err != nil {
		return nil, content.Reference{}, fmt.Errorf("reference %q: %v; use HOST[:PORT]/REPO:TAG, HOST/REPO@sha256:... or oci:DIR:TAG", s, err)
	}
	host := strings.SplitN(s, "/", 2)[0]
	if !strings.Contains(host, ".") && !strings.Contains(host, ":") && !strings.HasPrefix(s, "localhost/") {
		return nil, content.Reference{}, fmt.Errorf("reference %q: name the registry host, as in registry.example.com/ipa/ironic-python-agent:2024.2", s)
	}
	repo := r.Context()
	ref := content.Reference{Name: s, Repository: repo.RegistryStr() + "/" + repo.RepositoryStr()}
	switch r := r.(type) {
	case name.Digest:
		ref.Digest, err = digest.Parse(r.DigestStr())
		if err != nil {
			return nil, content.Reference{}, fmt.Errorf("reference %q: %w", s, err)
		}
	case name.Tag:
		ref.Tag = r.TagStr()
	}
	return newRegistry(repo, o), ref, nil
}
