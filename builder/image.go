package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// DefaultBuilderTag is the tag `ipa-oci builder build` gives the builder image.
const DefaultBuilderTag = "ipa-oci/builder:bookworm"

// ImageOptions say how to build the builder image.
type ImageOptions struct {
	// Dockerfile is the path of Dockerfile.builder. It is the whole build context: the
	// Dockerfile copies nothing in, so no other host file can change the image.
	Dockerfile string
	// BuildArgs override the Dockerfile's ARGs (BASE_IMAGE, APT_SNAPSHOT, APT_MIRROR, ...).
	BuildArgs map[string]string
	// Tag names the result (default DefaultBuilderTag; "-" for none).
	Tag string
	// NoCache ignores the engine's build cache and image reuse by recipe label.
	NoCache bool
	// Log receives the build output line by line (default: discarded).
	Log logrus.FieldLogger
}

// Recipe returns the sha256 of the Dockerfile and the sorted build args: the label value
// EnsureImage uses to find an image built from the same recipe.
func Recipe(dockerfile []byte, args map[string]string) string {
	h := sha256.New()
	h.Write(dockerfile)
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, args[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FindImage returns the ID of a local image labelled with recipe, or "" if there is none.
func FindImage(ctx context.Context, cli client.APIClient, recipe string) (string, error) {
	res, err := cli.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("label", LabelRecipe+"="+recipe),
	})
	if err != nil {
		return "", fmt.Errorf("list builder images: %w", err)
	}
	if len(res.Items) == 0 {
		return "", nil
	}
	// Newest first, so a rebuilt image wins over an older one with the same recipe.
	sort.Slice(res.Items, func(i, j int) bool { return res.Items[i].Created > res.Items[j].Created })
	return res.Items[0].ID, nil
}

// EnsureImage returns the ID of an image built from opts' recipe, building it only when no
// local image carries the recipe label (or opts.NoCache is set).
func EnsureImage(ctx context.Context, cli client.APIClient, opts ImageOptions) (string, error) {
	df, err := os.ReadFile(opts.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("read builder Dockerfile: %w", err)
	}
	recipe := Recipe(df, opts.BuildArgs)
	// Serialise concurrent callers on this host (test packages run in parallel) so the image is
	// built once.
	if lock, err := os.OpenFile(filepath.Join(os.TempDir(), "ipa-oci-builder-"+recipe[:16]+".lock"), os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		defer lock.Close()
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX) == nil {
			defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		}
	}
	if !opts.NoCache {
		id, err := FindImage(ctx, cli, recipe)
		if err != nil || id == "" {
			if err != nil {
				return "", err
			}
		} else {
			if opts.Tag != "-" {
				tag := opts.Tag
				if tag == "" {
					tag = DefaultBuilderTag
				}
				if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: tag}); err != nil {
					return "", fmt.Errorf("tag builder image %s as %s: %w", id, tag, err)
				}
			}
			return id, nil
		}
	}
	return BuildImage(ctx, cli, opts)
}

// BuildImage builds Dockerfile.builder through the Engine API with the classic builder and
// host networking (so apt reaches the mirror without a bridge) and returns the image ID.
func BuildImage(ctx context.Context, cli client.APIClient, opts ImageOptions) (string, error) {
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	df, err := os.ReadFile(opts.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("read builder Dockerfile: %w", err)
	}
	buildCtx, err := dockerfileContext(df)
	if err != nil {
		return "", err
	}
	tag := opts.Tag
	if tag == "" {
		tag = DefaultBuilderTag
	}
	var tags []string
	if tag != "-" {
		tags = []string{tag}
	}
	args := make(map[string]*string, len(opts.BuildArgs))
	for k, v := range opts.BuildArgs {
		args[k] = &v
	}
	res, err := cli.ImageBuild(ctx, bytes.NewReader(buildCtx), client.ImageBuildOptions{
		Tags:        tags,
		Dockerfile:  "Dockerfile",
		BuildArgs:   args,
		NetworkMode: "host",
		NoCache:     opts.NoCache,
		Remove:      true,
		ForceRemove: true,
		Version:     buildtypes.BuilderV1,
		Labels:      map[string]string{LabelRecipe: Recipe(df, opts.BuildArgs)},
	})
	if err != nil {
		return "", buildError(ctx, cli, opts, df, err)
	}
	defer res.Body.Close()
	id, err := readBuildStream(res.Body, log)
	if err != nil {
		return "", buildError(ctx, cli, opts, df, err)
	}
	return id, nil
}

// buildError wraps a failed build's error. When the base image is not in the engine's image
// store, the build failed pulling it (no other step runs before FROM), which on an air-gapped
// host it always will: the error then says how to build from a local base instead.
func buildError(ctx context.Context, cli client.APIClient, opts ImageOptions, df []byte, err error) error {
	base := baseImage(df, opts.BuildArgs)
	if base == "" || ctx.Err() != nil {
		return fmt.Errorf("build builder image from %s: %w", opts.Dockerfile, err)
	}
	ictx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if _, ierr := cli.ImageInspect(ictx, base); ierr == nil {
		return fmt.Errorf("build builder image from %s: %w", opts.Dockerfile, err)
	}
	cause := err
	var be *buildStreamError
	if errors.As(err, &be) {
		cause = errors.New(be.msg) // the output before a failed pull is only the ARG and FROM steps
	}
	return errkind.Mark(ErrBaseImage, "build builder image from %s: pull base image %s: %w; on a host without registry access, "+
		"put a Debian bookworm image into the engine's store (docker load or podman load, or docker import a "+
		"debootstrap tree) and set the build argument BASE_IMAGE=<its name>", opts.Dockerfile, base, cause)
}

// baseImage is the image the Dockerfile's first FROM names, with the ARGs declared before it
// expanded (build args override their defaults); "" if there is no FROM.
func baseImage(df []byte, args map[string]string) string {
	vars := map[string]string{}
	for _, line := range strings.Split(string(df), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			name, def, _ := strings.Cut(fields[1], "=")
			if v, ok := args[name]; ok {
				def = v
			}
			vars[name] = strings.Trim(def, `"'`)
		case "FROM":
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") { // --platform=...
					return os.Expand(f, func(k string) string { return vars[k] })
				}
			}
			return ""
		}
	}
	return ""
}

// dockerfileContext is a build context holding only the Dockerfile, with fixed metadata.
func dockerfileContext(df []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(df); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildMessage is one JSON message of the engine's build output stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// buildStreamError is an error the engine reported in its build output, with the output's
// last lines.
type buildStreamError struct {
	msg  string
	last []string
}

func (e *buildStreamError) Error() string {
	return fmt.Sprintf("%s; last output:\n%s", e.msg, strings.Join(e.last, "\n"))
}

// readBuildStream logs the build output line by line and returns the built image ID.
func readBuildStream(r io.Reader, log logrus.FieldLogger) (string, error) {
	dec := json.NewDecoder(r)
	var id string
	var partial string
	var last []string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("read build output: %w", err)
		}
		if m.Error != "" || m.ErrorDetail != nil {
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			return "", &buildStreamError{msg: strings.TrimSpace(msg), last: last}
		}
		if len(m.Aux) > 0 {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		text := partial + m.Stream
		if m.Status != "" {
			text += m.Status + "\n"
		}
		lines := strings.Split(text, "\n")
		partial = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			l = strings.TrimRight(l, "\r")
			if l == "" {
				continue
			}
			log.WithField("phase", "builder-image").Info(l)
			last = append(last, l)
			if len(last) > 20 {
				last = last[1:]
			}
		}
	}
	if id == "" {
		return "", fmt.Errorf("the engine reported no image ID; last output:\n%s", strings.Join(last, "\n"))
	}
	return id, nil
}
