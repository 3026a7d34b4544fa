// Package builder runs Buildroot inside a pinned builder container through the Docker Engine
// API (github.com/moby/moby/client): it builds the builder image from Dockerfile.builder, runs
// the fetch phase (network on) and the build phase (network off) as the invoking user with fixed
// in-container paths, streams the logs, and writes the kernel, the initramfs and build-info.json.
package builder

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Labels ipa-oci puts on the containers and images it creates, so leftovers can be found with
// a label filter (e.g. `org.ipa-oci.managed=true`).
const (
	// LabelManaged is "true" on every container ipa-oci creates.
	LabelManaged = "org.ipa-oci.managed"
	// LabelPhase names the build phase a container runs: fetch or build.
	LabelPhase = "org.ipa-oci.phase"
	// LabelBuildID is a random ID shared by the containers of one `ipa-oci build`.
	LabelBuildID = "org.ipa-oci.build-id"
	// LabelOutput is the host output directory of the build a container belongs to.
	LabelOutput = "org.ipa-oci.output"
	// LabelRecipe is the sha256 of Dockerfile.builder plus its build args, on builder images.
	LabelRecipe = "org.ipa-oci.builder.recipe-sha256"
)

// NewDockerClient connects to the Docker engine named by DOCKER_HOST (default: the local
// socket; Podman's Docker-compatible socket works too) and negotiates the API version.
func NewDockerClient(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w (check DOCKER_HOST)", err)
	}
	pctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cannot reach the Docker engine (%s): %w; start dockerd or set DOCKER_HOST", cli.DaemonHost(), err)
	}
	return cli, nil
}
