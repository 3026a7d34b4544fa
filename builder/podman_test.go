package builder

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// Podman-specific test helpers and tests. They run when the suite's engine is Podman
// (scripts/test.sh's second pass: DOCKER_HOST=unix:///run/podman/podman.sock
// IPA_OCI_TEST_ENGINE=podman) and skip, saying so, under dockerd.

// podmanDefaultCaps is Podman 4's default capability set (containers.conf
// default_capabilities): its container inspect lists these in CapDrop when all are dropped.
var podmanDefaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
	"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

func needPodman(t *testing.T) {
	t.Helper()
	needEnv(t)
	if tenv.engine != enginePodman {
		t.Skipf("Podman only; the suite's engine is %s (scripts/test.sh runs it against Podman too)", tenv.engine)
	}
}

// podmanService is a rootful `podman system service` of the test's own, on its own socket,
// sharing the host's image and container store with the suite's service (so the builder
// image is there without a load). It is stopped by its PID.
type podmanService struct {
	cli   *client.Client
	netns string // the network namespace it runs in ("": the host's)
}

// podmanServiceOptions say how to start a test Podman service.
type podmanServiceOptions struct {
	// netns runs the service in a new network namespace of the test's own: the default
	// network's bridge and firewall rules are created there, never in the host's namespace.
	netns bool
	// conf, when not nil, becomes the service's CONTAINERS_CONF, which replaces the host's
	// containers.conf and its containers.conf.d drop-ins (default_ulimits included).
	conf *string
}

// startPodmanService starts a test Podman service and waits until it answers.
func startPodmanService(t *testing.T, o podmanServiceOptions) *podmanService {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a rootful test Podman service needs root")
	}
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman not found (scripts/setup-test-env.sh installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "ipaoci-pod-") // short: the socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &podmanService{}
	args := []string{bin, "system", "service", "--time=0", "unix://" + filepath.Join(dir, "podman.sock")}
	if o.netns {
		s.netns = addTestNetns(t)
		args = append([]string{"nsenter", "--net=/var/run/netns/" + s.netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = os.Environ()
	if o.conf != nil {
		conf := filepath.Join(dir, "containers.conf")
		if err := os.WriteFile(conf, []byte(*o.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "CONTAINERS_CONF="+conf)
	}
	logf, err := os.Create(filepath.Join(dir, "podman.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cli = startEngine(t, cmd, logf, filepath.Join(dir, "podman.sock"))
	return s
}

// startPodmanBridgeEngine is startBridgeEngine for Podman: a test service in a network
// namespace of its own, whose default network ("podman": CNI's or netavark's bridge, as
// installed) is created inside that namespace by the first container that joins it.
func startPodmanBridgeEngine(t *testing.T) *bridgeEngine {
	t.Helper()
	s := startPodmanService(t, podmanServiceOptions{netns: true})
	nr, err := s.cli.NetworkInspect(context.Background(), "podman", client.NetworkInspectOptions{})
	if err != nil {
		t.Fatalf("inspect Podman's default network: %v", err)
	}
	var subnet netip.Prefix
	var gateway netip.Addr
	for _, c := range nr.Network.IPAM.Config {
		if c.Subnet.Addr().Is4() {
			subnet, gateway = c.Subnet, c.Gateway
		}
	}
	if !subnet.IsValid() || !gateway.IsValid() {
		t.Fatalf("Podman's default network has no IPv4 subnet and gateway: %+v", nr.Network.IPAM)
	}
	return &bridgeEngine{
		// Podman reports the mode "default" resolved to.
		cli: s.cli, netns: s.netns, network: nr.Network.Name, mode: "bridge",
		subnet: subnet, gateway: gateway.String(),
		// The bridge (and with it the gateway address) exists only once a container joined
		// the network: listen on every address of the namespace, nothing outside reaches it.
		listen: "0.0.0.0:0",
		// A host-network fetch container shares the service's namespace: it reaches the test
		// server on that namespace's loopback, which no container on the bridge can.
		hostAddr: "127.0.0.1",
	}
}

// TestPodmanWithoutUlimitsFix starts a Podman service without the default_ulimits host fix
// docs/build.md names (an empty CONTAINERS_CONF: Podman's own defaults) and checks that the
// phase fails with Podman's reason, runc's refused rlimit, rather than "received 409". Rootful
// Podman asks for 1048576 open files and processes, which a host without CAP_SYS_RESOURCE
// cannot grant. (Without catatonit the create call already fails with Podman's
// "container-init binary not found on the host: stat /usr/libexec/podman/catatonit", which
// this test cannot provoke without removing the host's binary: the compat API ignores
// containers.conf's init_path.)
func TestPodmanWithoutUlimitsFix(t *testing.T) {
	needPodman(t)
	if hostHasCapSysResource(t) {
		t.Skip("this host has CAP_SYS_RESOURCE: Podman may raise the rlimits, default_ulimits is not needed")
	}
	noConf := ""
	s := startPodmanService(t, podmanServiceOptions{conf: &noConf})
	label := fmt.Sprintf("no-ulimits-%d", os.Getpid())
	_, err := runContainer(context.Background(), s.cli, runSpec{
		phase: "build", image: tenv.imageID, cmd: []string{"true"}, network: networkNone, user: "1000:1000",
		labels: map[string]string{LabelManaged: "true", LabelOutput: label},
	}, discardSink())
	t.Logf("%v", err)
	if err == nil || !strings.Contains(err.Error(), "error setting rlimit") || strings.Contains(err.Error(), "409") {
		t.Errorf("error %v: want Podman's \"error setting rlimit\"", err)
	}
	assertNoContainers(t, label)
}

// hostHasCapSysResource reports whether this process may raise rlimits above their hard
// limit (the bounding set is what Podman's children can have).
func hostHasCapSysResource(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			var caps uint64
			fmt.Sscanf(strings.TrimSpace(v), "%x", &caps)
			return caps&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return false
}

// TestBuilderImageSameUnderPodmanAndDocker compares, file by file (FileManifest, what
// `ipa-oci builder diff` compares), the builder image Podman built through its compatible API
// (buildah) with the one dockerd's classic builder built from the same recipe. Images built
// from different states of the apt mirror cannot match, so when their dpkg status files
// differ the test says so and skips rather than blaming an engine.
func TestBuilderImageSameUnderPodmanAndDocker(t *testing.T) {
	needPodman(t)
	ctx := context.Background()
	dc, err := client.New(client.WithHost(client.DefaultDockerHost), client.WithAPIVersionNegotiation())
	if err == nil {
		defer dc.Close()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = dc.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
	}
	if err != nil {
		if os.Getenv(testEngineEnv) != "" {
			t.Fatalf("the Podman pass of scripts/test.sh compares with dockerd at %s: %v", client.DefaultDockerHost, err)
		}
		t.Skipf("no dockerd at %s to compare with: %v", client.DefaultDockerHost, err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	opts, err := testImageOptions(log)
	if err != nil {
		t.Fatal(err)
	}
	dockerID, err := EnsureImage(ctx, dc, opts)
	if err != nil {
		t.Fatalf("builder image on dockerd: %v", err)
	}
	a, err := FileManifest(ctx, dc, dockerID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FileManifest(ctx, tenv.cli, tenv.imageID)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 10000 {
		t.Fatalf("manifest of %s has only %d entries", dockerID, len(a))
	}
	const status = "var/lib/dpkg/status"
	if a[status] != b[status] {
		t.Skipf("dockerd's image %s and Podman's %s were built from different apt mirror states (/%s differs): remove one and rerun", dockerID, tenv.imageID, status)
	}
	t.Logf("compared %d paths of dockerd's %s and Podman's %s", len(a), dockerID, tenv.imageID)
	if d := DiffManifests(a, b); len(d) > 0 {
		if len(d) > 50 {
			d = append(d[:50], "...")
		}
		t.Errorf("the builder image differs between dockerd and Podman, %d paths:\n%s", len(DiffManifests(a, b)), strings.Join(d, "\n"))
	}
}
