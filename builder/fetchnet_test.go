package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// The shared test engine runs with --bridge=none, so the fetch phase's default network is
// tested against a second dockerd of the test's own: it runs inside a network namespace the
// test creates (its bridge, its containers and the test server there have no route out), with
// its own data root, exec root, pidfile and unix socket, and is stopped by its PID. Under
// Podman it is a second `podman system service` in such a namespace (podman_test.go).

const (
	engineBridge  = "ipaoci0" // the test engine's bridge, inside the test's namespace
	engineGateway = "10.213.7.1"
	engineSubnet  = "10.213.7."
)

var engineSeq atomic.Int32

// bridgeEngine is a running test engine with a default bridge network.
type bridgeEngine struct {
	cli      *client.Client
	netns    string       // name under /var/run/netns
	network  string       // the default network's name in a container's NetworkSettings
	mode     string       // the NetworkMode inspect reports for a container on it
	subnet   netip.Prefix // its subnet
	gateway  string       // the namespace's address on the bridge
	listen   string       // where the test server listens in the namespace
	hostAddr string       // the server's address as a host-network container sees it
}

// addTestNetns creates a network namespace with its loopback up, deleted when the test ends.
// It skips the test if the kernel refuses one.
func addTestNetns(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("ipaoci-%d-%d", os.Getpid(), engineSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("not permitted")) {
			t.Skipf("the kernel does not permit a network namespace here: %s", out)
		}
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", ns, err, out)
	}
	return ns
}

// startBridgeEngine starts a dockerd with a bridge in a new network namespace and loads the
// builder image into it. Its data root is cached under the ipa-oci cache directory by image ID
// (the image is ~650 MB: loading it costs ~40 s once), used by one test engine at a time.
func startBridgeEngine(t *testing.T, imageID string) *bridgeEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a test engine with a bridge needs root (network namespace, dockerd)")
	}
	if tenv.engine == enginePodman {
		return startPodmanBridgeEngine(t)
	}
	for _, tool := range []string{"dockerd", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/setup-test-env.sh installs it): %v", tool, err)
		}
	}
	ns := addTestNetns(t)
	for _, args := range [][]string{
		{"link", "add", engineBridge, "type", "bridge"},
		{"addr", "add", engineGateway + "/24", "dev", engineBridge},
		{"link", "set", engineBridge, "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			if args[1] == "add" && bytes.Contains(out, []byte("not supported")) {
				t.Skipf("the kernel does not support a bridge here: %s", out)
			}
			t.Fatalf("ip -n %s %v: %v: %s", ns, args, err, out)
		}
	}

	cache := filepath.Join(testCacheDir(t), "test-engine", strings.TrimPrefix(imageID, "sha256:")[:16])
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })          // after the engine stopped (cleanups run in reverse)
	run, err := os.MkdirTemp("", "ipaoci-eng-") // short: the socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// dockerd leaves its namespace bind-mounted under the exec root (exec/netns/default).
		unmountUnder(t, run)
		unmountUnder(t, filepath.Join(cache, "data"))
		os.RemoveAll(run)
	})
	os.WriteFile(filepath.Join(run, "daemon.json"), []byte("{}\n"), 0o600)
	logf, err := os.Create(filepath.Join(run, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	sock := filepath.Join(run, "docker.sock")
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+ns, "dockerd",
		"--data-root", filepath.Join(cache, "data"), "--exec-root", filepath.Join(run, "exec"),
		"--pidfile", filepath.Join(run, "dockerd.pid"), "-H", "unix://"+sock,
		"--config-file", filepath.Join(run, "daemon.json"),
		"--bridge", engineBridge, "--iptables=false", "--ip6tables=false", "--ip-forward=false",
		"--ip-masq=false", "--userland-proxy=false", "--storage-driver", "overlay2",
		"--cgroup-parent", "/"+ns)
	cli := startEngine(t, cmd, logf, sock)
	ctx := context.Background()
	if _, err := cli.ImageInspect(ctx, imageID); err != nil {
		start := time.Now()
		saved, err := tenv.cli.ImageSave(ctx, []string{imageID})
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := cli.ImageLoad(ctx, saved)
		if err == nil {
			_, err = io.Copy(io.Discard, loaded)
			loaded.Close()
		}
		saved.Close()
		if err != nil {
			t.Fatalf("load the builder image into the test engine: %v", err)
		}
		t.Logf("builder image loaded into the test engine in %s (cached in %s)", time.Since(start).Round(time.Second), cache)
	}
	return &bridgeEngine{cli: cli, netns: ns, network: "bridge", mode: "default", subnet: netip.MustParsePrefix(engineSubnet + "0/24"),
		gateway: engineGateway, listen: engineGateway + ":0", hostAddr: engineGateway}
}

// startEngine starts cmd, a test engine serving the Engine API on the unix socket sock and
// logging to logf, stops it by its PID when the test ends, and returns a client for it once
// it answers.
func startEngine(t *testing.T, cmd *exec.Cmd, logf *os.File, sock string) *client.Client {
	t.Helper()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { stopByPID(t, cmd.Process, exited) })
	cli, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return cli
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("test engine exited: %s", tail(string(log), 2000))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("test engine did not answer: %v\n%s", err, tail(string(log), 2000))
		}
	}
}

// stopByPID stops a test engine (dockerd and with it its containerd, or a Podman service) by
// its process, never by name.
func stopByPID(t *testing.T, p *os.Process, exited <-chan struct{}) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(45 * time.Second):
		t.Logf("test engine (pid %d) did not stop on SIGTERM; killing it", p.Pid)
		p.Kill()
		<-exited
	}
}

// unmountUnder detaches every mount at or below dir (the test engine has stopped by then).
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, l := range strings.Split(string(b), "\n") {
		fields := strings.Fields(l)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- { // deepest (mounted last) first
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", points[i], err)
		}
	}
}

// listenInNetns listens on addr inside the network namespace ns. The socket belongs to the
// namespace it was created in; the thread that entered ns is never unlocked, so the runtime
// discards it and no other goroutine runs in ns.
func listenInNetns(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

// TestFetchNetworkOnBridgeEngine: on an engine with a bridge, the fetch phase runs on the
// engine's default network (its own address on the bridge) unless host networking is asked
// for (then it shares the engine's network namespace); the build phase has no network either
// way. The stand-in source is served from the test's namespace, at the bridge's address.
func TestFetchNetworkOnBridgeEngine(t *testing.T) {
	needEnv(t)
	eng := startBridgeEngine(t, tenv.imageID)
	src := bytes.Repeat([]byte("stand-in package source 1.0\n"), 1000)
	var mu sync.Mutex
	var clients []string
	ln := listenInNetns(t, eng.netns, eng.listen)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		clients = append(clients, host)
		mu.Unlock()
		w.Write(src)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, tc := range []struct {
		name        string
		hostNetwork bool
		network     string
	}{
		{"default", false, eng.mode},
		{"host", true, "host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcURL := "http://" + net.JoinHostPort(eng.gateway, port) + "/standin-src-1.0.tar"
			if tc.hostNetwork {
				srcURL = "http://" + net.JoinHostPort(eng.hostAddr, port) + "/standin-src-1.0.tar"
			}
			f := newFixture(t)
			mustWrite(t, filepath.Join(f.external, "configs", "test_defconfig"),
				fmt.Sprintf("STANDIN_SOURCE_URL=%q\nSTANDIN_SOURCE_SHA256=%q\n", srcURL, sha256hex(src)))
			ic := &inspectingClient{APIClient: eng.cli}
			o := f.options(filepath.Join(f.dir, "out"))
			o.Docker, o.HostNetwork = ic, tc.hostNetwork
			o.HostEnv = []string{"PATH=/usr/bin:/bin"} // no proxy: the server is on the bridge
			mu.Lock()
			clients = nil
			mu.Unlock()
			if _, err := Build(context.Background(), o); err != nil {
				t.Fatalf("build on the bridge engine: %v\n%s", err, f.logBuf)
			}
			fetch, build := ic.seen["fetch"], ic.seen["build"]
			if fetch.HostConfig == nil || build.HostConfig == nil {
				t.Fatalf("phases seen: %v", ic.seen)
			}
			if got := string(fetch.HostConfig.NetworkMode); got != tc.network {
				t.Errorf("fetch NetworkMode %q, want %q", got, tc.network)
			}
			if got := string(build.HostConfig.NetworkMode); got != "none" {
				t.Errorf("build NetworkMode %q, want none", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(clients) != 1 {
				t.Fatalf("the server saw %d downloads, want 1 (from the fetch phase): %v", len(clients), clients)
			}
			if tc.hostNetwork {
				// In the engine's own namespace the server's address is local: it is the source.
				if clients[0] != eng.hostAddr {
					t.Errorf("host-network fetch came from %s, want %s", clients[0], eng.hostAddr)
				}
				return
			}
			ep := fetch.NetworkSettings.Networks[eng.network]
			if ep == nil || !ep.IPAddress.IsValid() {
				t.Fatalf("the fetch container has no address on the %s network: %+v", eng.network, fetch.NetworkSettings)
			}
			ip := ep.IPAddress.String()
			if !eng.subnet.Contains(ep.IPAddress) || ip == eng.gateway || clients[0] != ip {
				t.Errorf("fetch container address %s, server saw %s: want one address on %s other than the gateway", ip, clients[0], eng.subnet)
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
