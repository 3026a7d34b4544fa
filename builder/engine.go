package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/moby/moby/client"
)

// engineFacts are what the phase containers depend on beyond the Docker-compatible API.
type engineFacts struct {
	podman   bool // Podman's Docker-compatible service, not dockerd
	rootless bool // Podman runs as the invoking user
	cgroupV1 bool // Podman's host uses cgroup v1
}

// probeEngine asks the engine what it is: /version names Podman as a component, and
// Podman's own /libpod/info says whether it runs rootless (its /info does not).
func probeEngine(ctx context.Context, cli client.APIClient) (engineFacts, error) {
	var f engineFacts
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return f, fmt.Errorf("engine version: %w", err)
	}
	for _, c := range v.Components {
		f.podman = f.podman || strings.HasPrefix(c.Name, "Podman")
	}
	if f.podman {
		err = podmanInfo(ctx, cli.DaemonHost(), &f)
	}
	return f, err
}

// usernsMode is the user namespace mode of the phase containers: "keep-id" on rootless
// Podman, "" (the engine's default) elsewhere. Rootless Podman maps the invoking user to root
// inside the container and the container's other uids to subordinate ids; keep-id maps it to
// the same uid inside instead, so the container user (--user, by default the invoking user)
// owns the bind-mounted output and caches as on the host.
func (f engineFacts) usernsMode() string {
	if f.podman && f.rootless {
		return "keep-id"
	}
	return ""
}

// pidsLimitIgnored says the engine accepts PidsLimit but does not apply it: rootless Podman
// has no cgroup of its own to put the limit in on a cgroup v1 host.
func (f engineFacts) pidsLimitIgnored() bool { return f.podman && f.rootless && f.cgroupV1 }

// podmanInfo fills f from Podman's own /libpod/info at host, a unix:// socket. Other
// transports are not asked: the service then counts as rootful on cgroup v2.
func podmanInfo(ctx context.Context, host string, f *engineFacts) error {
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod/info", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("podman info at %s: %w", host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("podman info at %s: %s", host, resp.Status)
	}
	var info struct {
		Host struct {
			CgroupVersion string `json:"cgroupVersion"`
			Security      struct {
				Rootless bool `json:"rootless"`
			} `json:"security"`
		} `json:"host"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return fmt.Errorf("podman info at %s: %w", host, err)
	}
	f.rootless, f.cgroupV1 = info.Host.Security.Rootless, info.Host.CgroupVersion == "v1"
	return nil
}
