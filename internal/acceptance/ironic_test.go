package acceptance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/boottest"
	"github.com/ipa-oci/ipa-oci/internal/netns"
	"github.com/ipa-oci/ipa-oci/internal/testenv"
)

// envNamespace tells the test binary that it runs inside the test's network namespace (the
// second half of TestIronicAcceptance); envArtifacts carries the prepared Artifacts as JSON.
const (
	envNamespace = "IPA_OCI_ACCEPTANCE_NETNS"
	envArtifacts = "IPA_OCI_ACCEPTANCE_ARTIFACTS"
)

// The VM as QEMU defines it; inspection must report exactly this.
const (
	vmCPUs      = 2
	vmMemoryMiB = 1536
	vmDiskMiB   = 5120 // IPA wants a disk of at least 4 GiB; the file is sparse
)

// TestIronicAcceptance is the acceptance test of everything ipa-oci ships: the project's kernel
// and init, with Debian's real ironic-python-agent 10.2.0 in a TEST IMAGE, pushed with ipa-oci
// over TLS to a real Distribution registry, are deployed by a real Ironic 2025.1 from the
// oci:// URLs that `ipa-oci inspect` prints, QEMU netbooting through iPXE chained to Ironic's
// boot.ipxe. Everything runs in a network namespace this test creates (lo only, 10.0.2.2 on
// it, no route out).
//
// Flow 1 ([deploy]fast_track = true, one agent boot): manage, inspect (inventory checked
// against QEMU's -smp/-m/-drive/-nic), provide (automated cleaning: metadata erase), deploy a
// whole-disk image; pass = active, the marker on the VM's disk, the conductor's log showing
// both OCI downloads with their digests. Negative cells: --plain-http URLs, the index digest
// and a tampered layer each fail with Ironic's own error, and the tampered node never boots.
// Flow 2 (fast_track = false, automated cleaning off for that node): the agent boots for the
// deploy alone; that boot is timed (QEMU start to lookup, first heartbeat, image written,
// active).
func TestIronicAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Ironic acceptance test builds Debian trixie trees (cached) and boots QEMU")
	}
	if os.Getenv(envNamespace) != "" {
		inNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the Ironic acceptance test needs root (debootstrap, chroot, network namespaces); CI runs as root")
		}
		t.Skip("needs root: debootstrap, chroot, overlay mounts and a network namespace (run as root, as CI does)")
	}
	for _, tool := range []string{"debootstrap", "qemu-system-x86_64", "busybox", "ip", "unshare", "nsenter", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run scripts/setup-test-env.sh", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	begin := time.Now()
	testenv.Tool(t, "registry") // built here: the namespace has no route to the module proxy
	art, err := Prepare(ctx, testenv.RepoRoot(t), t.TempDir(), testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(art.Initramfs)
	t.Logf("prepared in %.0f s: kernel %s, test image %s (%.1f MiB), Ironic chroot %s",
		time.Since(begin).Seconds(), art.Kernel, art.Initramfs, float64(fi.Size())/(1<<20), art.Chroot)

	name := fmt.Sprintf("ipa-oci-ironic-%d", os.Getpid())
	ns, err := netns.Create(ctx, name, GuestHost+"/32")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(context.Background()); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			t.Errorf("network namespace %s still exists", name)
		}
	})
	// Containment: only lo, and no route anywhere but the namespace's own addresses.
	ifaces, err := ns.Interfaces(ctx)
	if err != nil || len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Fatalf("namespace %s interfaces = %v (%v), want only lo", name, ifaces, err)
	}
	if out, err := ns.Command(ctx, "ip", "route", "get", "192.0.2.1").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "unreachable") {
		t.Fatalf("namespace %s has a route out: %s (%v)", name, out, err)
	}

	artJSON, _ := json.Marshal(art)
	child := ns.Command(ctx, os.Args[0], "-test.run", "^TestIronicAcceptance$", "-test.v", "-test.count=1", "-test.timeout=50m")
	child.Env = append(os.Environ(), envNamespace+"="+name, envArtifacts+"="+string(artJSON))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = child.Stdout
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		t.Log("netns| " + sc.Text())
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("the part of the test inside namespace %s failed: %v", name, err)
	}
	t.Logf("whole test: %.0f s", time.Since(begin).Seconds())
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// stack is what the test runs inside the namespace.
type stack struct {
	art      Artifacts
	ca       *testenv.CA
	reg      *testenv.Registry // TLS, 10.0.2.2:5443
	plain    *testenv.Registry // plain HTTP, 127.0.0.1:PORT (the README's demo setup)
	imageDir string
	image    diskImage
}

func inNamespace(t *testing.T) {
	var s stack
	if err := json.Unmarshal([]byte(os.Getenv(envArtifacts)), &s.art); err != nil {
		t.Fatalf("%s: %v", envArtifacts, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()

	s.ca = testenv.NewCA(t, GuestHost)
	s.reg = testenv.StartRegistryTLS(t, s.ca, fmt.Sprintf("%s:%d", GuestHost, RegistryPort))
	s.plain = testenv.StartRegistry(t)
	s.imageDir = t.TempDir()
	s.image = writeDiskImage(t, filepath.Join(s.imageDir, "disk.img"))
	img, err := StartWebServer(ctx, s.imageDir, ImagePort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(img.Stop)

	settings := pushAndInspect(t, &s)

	t.Run("fast-track", func(t *testing.T) { fastTrackFlow(ctx, t, &s, settings) })
	if t.Failed() {
		return
	}
	t.Run("without-fast-track", func(t *testing.T) { slowFlow(ctx, t, &s, settings) })
}

// ironicURLs are the settings `ipa-oci inspect` printed.
type ironicURLs struct {
	kernel, ramdisk string
	baremetal       string // the `baremetal node set NODE ...` line
	conf            string // the ironic.conf snippet
	index           string // the index digest push printed
}

var (
	reKernel    = regexp.MustCompile(`(?m)^\s*deploy_kernel=(oci://\S+)$`)
	reRamdisk   = regexp.MustCompile(`(?m)^\s*deploy_ramdisk=(oci://\S+)$`)
	reBaremetal = regexp.MustCompile(`(?m)^\s*(baremetal node set NODE .*)$`)
	reConf      = regexp.MustCompile(`(?m)^\s*\[conductor\]\n\s*(deploy_kernel = \S+)\n\s*(deploy_ramdisk = \S+)$`)
)

func parseSettings(t *testing.T, out string) ironicURLs {
	t.Helper()
	var u ironicURLs
	for re, dst := range map[*regexp.Regexp]*string{reKernel: &u.kernel, reRamdisk: &u.ramdisk, reBaremetal: &u.baremetal} {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s in:\n%s", re, out)
		}
		*dst = m[1]
	}
	m := reConf.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ironic.conf snippet in:\n%s", out)
	}
	u.conf = m[1] + "\n" + m[2]
	if want := "deploy_kernel = " + u.kernel + "\ndeploy_ramdisk = " + u.ramdisk; u.conf != want {
		t.Errorf("ironic.conf snippet %q, want %q", u.conf, want)
	}
	if want := "baremetal node set NODE --driver-info deploy_kernel=" + u.kernel + " --driver-info deploy_ramdisk=" + u.ramdisk; u.baremetal != want {
		t.Errorf("baremetal line %q, want %q", u.baremetal, want)
	}
	return u
}

// ipaOCI runs the binary under test with env added; it returns stdout, stderr and the error.
func ipaOCI(ctx context.Context, s *stack, env []string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, s.art.IPAOCI, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// pushAndInspect pushes the kernel and the test image over TLS (the CA through SSL_CERT_FILE)
// and over plain HTTP, and returns what `inspect` prints for Ironic.
func pushAndInspect(t *testing.T, s *stack) map[string]ironicURLs {
	ctx := context.Background()
	caEnv := []string{"SSL_CERT_FILE=" + s.ca.CertFile}
	ref := s.reg.Host + "/ironic/ipa:10.2.0"
	args := []string{"push", ref, "--kernel", s.art.Kernel, "--initramfs", s.art.Initramfs, "--ipa-version", "10.2.0"}

	// Without the CA the push must fail on the certificate: the CA really comes from SSL_CERT_FILE.
	if _, stderr, err := ipaOCI(ctx, s, []string{"SSL_CERT_FILE=/dev/null", "SSL_CERT_DIR=/nonexistent"}, args...); err == nil ||
		!strings.Contains(stderr, "certificate signed by unknown authority") {
		t.Fatalf("push without the test CA: err %v, stderr %q; want an unknown-authority error", err, stderr)
	}
	stdout, stderr, err := ipaOCI(ctx, s, caEnv, append(args, "--ironic")...)
	if err != nil {
		t.Fatalf("ipa-oci push over TLS: %v\n%s", err, stderr)
	}
	index := strings.SplitN(stdout, "\n", 2)[0]
	if !strings.HasPrefix(index, "sha256:") {
		t.Fatalf("push printed %q first, want the index digest", index)
	}
	pushed := parseSettings(t, stdout)
	if strings.Contains(stdout, "plain HTTP") {
		t.Errorf("push over TLS warns about plain HTTP:\n%s", stdout)
	}
	stdout, stderr, err = ipaOCI(ctx, s, caEnv, "inspect", ref)
	if err != nil {
		t.Fatalf("ipa-oci inspect: %v\n%s", err, stderr)
	}
	tls := parseSettings(t, stdout)
	if tls != pushed {
		t.Errorf("push --ironic printed %+v, inspect %+v", pushed, tls)
	}
	tls.index = index
	prefix := "oci://" + s.reg.Host + "/ironic/ipa@sha256:"
	if !strings.HasPrefix(tls.kernel, prefix) || !strings.HasPrefix(tls.ramdisk, prefix) {
		t.Fatalf("inspect URLs %q, %q do not start with %q", tls.kernel, tls.ramdisk, prefix)
	}
	t.Logf("pushed index %s; Ironic settings from inspect:\n%s", index, stdout)

	// The same files over plain HTTP, as the README's demo does: inspect must warn.
	plainRef := s.plain.Host + "/ironic/ipa:10.2.0"
	if _, stderr, err := ipaOCI(ctx, s, nil, "push", plainRef, "--kernel", s.art.Kernel, "--initramfs", s.art.Initramfs, "--plain-http"); err != nil {
		t.Fatalf("push --plain-http: %v\n%s", err, stderr)
	} else if !strings.Contains(stderr, "Ironic reads oci://\nURLs over HTTPS") {
		t.Errorf("push --plain-http did not warn on stderr that Ironic reads over HTTPS:\n%s", stderr)
	}
	stdout, stderr, err = ipaOCI(ctx, s, nil, "inspect", plainRef, "--plain-http")
	if err != nil {
		t.Fatalf("inspect --plain-http: %v\n%s", err, stderr)
	}
	for _, want := range []string{"Ironic reads oci://\nURLs over HTTPS", "[oci]permit_fallback_to_http_transport = true", "update-ca-certificates"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect --plain-http lacks %q:\n%s", want, stdout)
		}
	}
	return map[string]ironicURLs{"tls": tls, "plain": parseSettings(t, stdout)}
}

// diskImage is the instance image: a raw disk with an MBR partition table and a marker.
type diskImage struct {
	path, sha256 string
	marker       []byte
	markerOffset int64
}

func writeDiskImage(t *testing.T, path string) diskImage {
	t.Helper()
	const size, start = 8 << 20, 2048 // bytes, first sector of partition 1
	b := make([]byte, size)
	entry := b[446:462]
	entry[4] = 0x83 // Linux
	binary.LittleEndian.PutUint32(entry[8:], start)
	binary.LittleEndian.PutUint32(entry[12:], size/512-start)
	b[510], b[511] = 0x55, 0xaa
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	marker := []byte("ipa-oci acceptance marker " + hex.EncodeToString(nonce))
	copy(b[start*512:], marker)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return diskImage{path: path, sha256: hex.EncodeToString(sum[:]), marker: marker, markerOffset: start * 512}
}

// checkMarker reads the VM's disk at the marker's offset.
func checkMarker(t *testing.T, disk string, img diskImage) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(img.marker))
	if _, err := f.ReadAt(got, img.markerOffset); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img.marker) {
		t.Fatalf("VM disk at %d holds %q, want the image's marker %q", img.markerOffset, got, img.marker)
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil || mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[446+4] != 0x83 {
		t.Fatalf("VM disk has no MBR partition table from the image (%v)", err)
	}
}

// keepLog writes a log into $IPA_OCI_ACCEPTANCE_LOGDIR (when set), named after the test.
func keepLog(t *testing.T, name, text string) {
	dir := os.Getenv("IPA_OCI_ACCEPTANCE_LOGDIR")
	if dir == "" {
		return
	}
	p := filepath.Join(dir, strings.NewReplacer("/", "_").Replace(t.Name())+"-"+name)
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(p, []byte(text), 0o644)
	}
}

// vmStarter returns the BMC's power-on: QEMU TCG netbooting through its NIC's iPXE ROM,
// chained to Ironic's boot.ipxe, with the agent's port forwarded from 10.0.2.2:9999.
func vmStarter(ctx context.Context, art Artifacts, mac, disk, workDir string) func(*Console) (*boottest.VM, error) {
	return func(c *Console) (*boottest.VM, error) {
		return boottest.StartVM(ctx, boottest.VMConfig{
			Netboot:    &boottest.Netboot{Bootfile: fmt.Sprintf("http://%s:%d/boot.ipxe", GuestHost, HTTPRootPort)},
			NetOptions: []string{fmt.Sprintf("hostfwd=tcp:%s:%d-:%d", GuestHost, AgentPort, AgentPort)},
			MAC:        mac, Disk: "virtio-blk", DiskImage: disk, DiskSizeMiB: vmDiskMiB,
			MemoryMiB: vmMemoryMiB, CPUs: vmCPUs, WorkDir: workDir, Serial: c,
		})
	}
}

// startIronic starts Ironic and the web server for its http_root, stopped at cleanup; on
// failure the log tails are printed.
func startIronic(ctx context.Context, t *testing.T, s *stack, cfg IronicConfig) *Ironic {
	t.Helper()
	ir, err := StartIronic(ctx, s.art.Chroot, t.TempDir(), s.ca.CertFile, cfg)
	if err != nil {
		t.Fatal(err)
	}
	web, err := StartWebServer(ctx, filepath.Join(ir.State, "httproot"), HTTPRootPort)
	if err != nil {
		ir.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		web.Stop()
		ir.Stop()
		keepLog(t, "ironic.log", ir.LogText())
		if t.Failed() {
			t.Logf("--- ironic log (tail) ---\n%s", ir.LogTail(30000))
			t.Logf("--- http_root access log (tail) ---\n%s", tail(web.Log(), 4000))
		}
	})
	return ir
}

// enroll creates a node with a PXE port for mac; driver info is set by the given function.
func enroll(ctx context.Context, t *testing.T, ir *Ironic, name, mac string) *Node {
	t.Helper()
	n, err := ir.CreateNode(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.CreatePort(ctx, n.UUID, mac); err != nil {
		t.Fatal(err)
	}
	return n
}

// setDriverInfo sets deploy_kernel/deploy_ramdisk with the `baremetal node set` line that
// ipa-oci printed, run by the real python-ironicclient CLI.
func setDriverInfo(ctx context.Context, t *testing.T, ir *Ironic, n *Node, u ironicURLs) {
	t.Helper()
	args := strings.Fields(strings.Replace(u.baremetal, "NODE", n.UUID, 1))[1:]
	if out, err := ir.Baremetal(ctx, args...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := ir.ClearParentNode(ctx, n.UUID); err != nil { // the CLI's PATCH hits the Debian bug too
		t.Fatal(err)
	}
	got, err := ir.Node(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DriverInfo["deploy_kernel"] != u.kernel || got.DriverInfo["deploy_ramdisk"] != u.ramdisk {
		t.Fatalf("driver_info after baremetal node set: %v", got.DriverInfo)
	}
	if got.ParentNode != nil {
		t.Fatalf("parent_node = %q after the workaround", *got.ParentNode)
	}
}

func provision(ctx context.Context, t *testing.T, ir *Ironic, uuid, target string, timeout time.Duration, want ...string) *Node {
	t.Helper()
	before, err := ir.Node(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, target); err != nil {
		t.Fatal(err)
	}
	// A transition to the state the node is in (inspect: manageable -> manageable) must be seen
	// to start before "settled" means anything.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n, err := ir.Node(ctx, uuid)
		if err == nil && (n.ProvisionState != before.ProvisionState || deref(n.TargetProvisionState) != "") {
			break
		}
	}
	n, err := ir.WaitState(ctx, uuid, timeout, want...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setInstance points the node at the instance image on the image server, by sha256.
func setInstance(ctx context.Context, t *testing.T, ir *Ironic, uuid string, img diskImage) {
	t.Helper()
	add := func(k string, v any) map[string]any {
		return map[string]any{"op": "add", "path": "/instance_info/" + k, "value": v}
	}
	if err := ir.Patch(ctx, uuid,
		add("image_source", fmt.Sprintf("http://%s:%d/%s", GuestHost, ImagePort, filepath.Base(img.path))),
		add("image_os_hash_algo", "sha256"), add("image_os_hash_value", img.sha256),
	); err != nil {
		t.Fatal(err)
	}
}

func fastTrackFlow(ctx context.Context, t *testing.T, s *stack, settings map[string]ironicURLs) {
	ir := startIronic(ctx, t, s, IronicConfig{FastTrack: true})
	u := settings["tls"]
	const mac = "52:54:00:12:80:01"
	n := enroll(ctx, t, ir, "node-fast-track", mac)
	setDriverInfo(ctx, t, ir, n, u)
	provision(ctx, t, ir, n.UUID, "manage", 2*time.Minute, "manageable")

	disk := filepath.Join(t.TempDir(), "disk0.raw")
	bmc := StartBMC(ctx, ir, n.UUID, vmStarter(ctx, s.art, mac, disk, t.TempDir()))
	t.Cleanup(func() {
		bmc.Stop()
		for i, b := range bmc.Boots() {
			keepLog(t, fmt.Sprintf("boot%d-console.log", i+1), b.VM.Output())
			if t.Failed() {
				t.Logf("--- boot %d (%s) serial console (tail) ---\n%s", i+1, b.State, b.VM.ConsoleTail(20000))
			}
		}
	})
	begin := time.Now()
	provision(ctx, t, ir, n.UUID, "inspect", 10*time.Minute, "manageable")
	t.Logf("inspection: %.1f s", time.Since(begin).Seconds())
	checkInventory(ctx, t, ir, n.UUID, mac)

	// The agent's downloads from the registry: both manifests by digest, both blobs verified.
	log := ir.LogText()
	for _, url := range []string{u.kernel, u.ramdisk} {
		for _, want := range []string{"Starting download blob download sequence for " + url, "Download of " + url + " has completed"} {
			if !strings.Contains(log, want) {
				t.Errorf("conductor log lacks %q", want)
			}
		}
	}

	begin = time.Now()
	provision(ctx, t, ir, n.UUID, "provide", 10*time.Minute, "available")
	t.Logf("cleaning: %.1f s", time.Since(begin).Seconds())
	if !regexp.MustCompile(`(?i)clean step.*erase_devices_metadata|erase_devices_metadata.*clean step`).MatchString(ir.LogText()) {
		t.Errorf("conductor log shows no erase_devices_metadata clean step")
	}
	// The agent's side of the metadata erase (ipa-debug=1 logs every command): the partition
	// table wiped, and fuser, which the image must carry, run on the disk.
	if boots := bmc.Boots(); len(boots) > 0 {
		for _, want := range []string{`CMD "wipefs --force --all /dev/vda" returned: 0`, `CMD "fuser /dev/vda" returned`} {
			if _, ok := boots[0].Console.First(want); !ok {
				t.Errorf("agent console lacks %q during cleaning", want)
			}
		}
	}

	setInstance(ctx, t, ir, n.UUID, s.image)
	begin = time.Now()
	provision(ctx, t, ir, n.UUID, "active", 10*time.Minute, "active")
	active := time.Now()
	t.Logf("deploy: %.1f s", time.Since(begin).Seconds())
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer pcancel()
	if err := bmc.WaitPoweredOff(pctx); err != nil {
		t.Fatalf("after deploy: %v", err)
	}
	checkMarker(t, disk, s.image)
	if boots := bmc.Boots(); len(boots) != 1 {
		t.Errorf("fast track: the agent booted %d times for inspect, clean and deploy, want once", len(boots))
	} else {
		reportTimes(t, boots[0], active)
	}
	if err := bmc.Err(); err != nil {
		t.Error(err)
	}
	bmc.Stop()

	t.Run("negative", func(t *testing.T) { negativeCells(ctx, t, s, ir, settings) })
}

// checkInventory compares the agent's inventory with the VM QEMU was told to make.
func checkInventory(ctx context.Context, t *testing.T, ir *Ironic, uuid, mac string) {
	t.Helper()
	var data struct {
		Inventory struct {
			CPU struct {
				Count int `json:"count"`
			} `json:"cpu"`
			Memory struct {
				PhysicalMB int `json:"physical_mb"`
			} `json:"memory"`
			Disks []struct {
				Name string `json:"name"`
				Size int64  `json:"size"`
			} `json:"disks"`
			Interfaces []struct {
				Name       string `json:"name"`
				MACAddress string `json:"mac_address"`
			} `json:"interfaces"`
		} `json:"inventory"`
	}
	if err := ir.Do(ctx, "GET", "/v1/nodes/"+uuid+"/inventory", nil, &data); err != nil {
		t.Fatal(err)
	}
	inv := data.Inventory
	if inv.CPU.Count != vmCPUs {
		t.Errorf("inventory cpu count %d, want %d (-smp)", inv.CPU.Count, vmCPUs)
	}
	if inv.Memory.PhysicalMB != vmMemoryMiB {
		t.Errorf("inventory physical memory %d MiB, want %d (-m)", inv.Memory.PhysicalMB, vmMemoryMiB)
	}
	var disk, nic bool
	for _, d := range inv.Disks {
		disk = disk || (d.Name == "/dev/vda" && d.Size == vmDiskMiB<<20)
	}
	for _, i := range inv.Interfaces {
		nic = nic || strings.EqualFold(i.MACAddress, mac)
	}
	if !disk {
		t.Errorf("inventory disks %+v, want /dev/vda of %d bytes (-drive)", inv.Disks, int64(vmDiskMiB)<<20)
	}
	if !nic {
		t.Errorf("inventory interfaces %+v, want MAC %s (-nic)", inv.Interfaces, mac)
	}
	n, err := ir.Node(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(n.Properties["memory_mb"]) != fmt.Sprint(vmMemoryMiB) {
		t.Errorf("properties memory_mb = %v, want %d (inspection hook memory)", n.Properties["memory_mb"], vmMemoryMiB)
	}
	t.Logf("inventory: %d CPUs, %d MiB, disks %+v, properties %v", inv.CPU.Count, inv.Memory.PhysicalMB, inv.Disks, n.Properties)
}

// negativeCells: each node's deploy images come from a source Ironic must refuse; cleaning
// fails with Ironic's own error before the node is powered on.
func negativeCells(ctx context.Context, t *testing.T, s *stack, ir *Ironic, settings map[string]ironicURLs) {
	tls := settings["tls"]
	tampered := pushTampered(ctx, t, s)
	cells := []struct {
		name    string
		urls    ironicURLs
		wantErr string
	}{
		{"plain-http", settings["plain"], "WRONG_VERSION_NUMBER"},
		{"index-digest", ironicURLs{kernel: "oci://" + s.reg.Host + "/ironic/ipa@" + tls.index, ramdisk: tls.ramdisk}, "Incorrect number of layers. Expected 1 layer, found 0 layers"},
		{"tampered-layer", tampered, "The supplied image checksum is invalid or does not match"},
	}
	for i, c := range cells {
		t.Run(c.name, func(t *testing.T) {
			n := enroll(ctx, t, ir, "node-"+c.name, fmt.Sprintf("52:54:00:12:8f:%02x", i+1))
			if err := ir.Patch(ctx, n.UUID,
				map[string]any{"op": "add", "path": "/driver_info/deploy_kernel", "value": c.urls.kernel},
				map[string]any{"op": "add", "path": "/driver_info/deploy_ramdisk", "value": c.urls.ramdisk}); err != nil {
				t.Fatal(err)
			}
			provision(ctx, t, ir, n.UUID, "manage", 2*time.Minute, "manageable")
			booted := false
			bmc := StartBMC(ctx, ir, n.UUID, func(*Console) (*boottest.VM, error) {
				booted = true
				return nil, fmt.Errorf("node %s must not boot", c.name)
			})
			if err := ir.Provision(ctx, n.UUID, "provide"); err != nil {
				t.Fatal(err)
			}
			got, err := ir.WaitState(ctx, n.UUID, 3*time.Minute, "clean failed")
			bmc.Stop()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got.Error(), c.wantErr) {
				t.Errorf("last_error %q, want it to contain %q", got.Error(), c.wantErr)
			}
			if booted || got.Power() == "power on" {
				t.Errorf("node %s was powered on (%s) with images Ironic refused", c.name, got.Power())
			}
			t.Logf("%s: %s", c.name, got.Error())
		})
	}
	// The tampered ramdisk never reached the web server the agent boots from.
	if out, _ := exec.Command("grep", "-rl", "tampered-ramdisk", filepath.Join(ir.State, "httproot")).Output(); len(out) > 0 {
		t.Errorf("the tampered ramdisk was published in http_root: %s", out)
	}
}

// pushTampered pushes the kernel and a small ramdisk of its own to ironic/tampered, then
// flips bytes of that ramdisk's blob in the registry's storage (same size, wrong sha256).
func pushTampered(ctx context.Context, t *testing.T, s *stack) ironicURLs {
	t.Helper()
	ramdisk := filepath.Join(t.TempDir(), "tampered.cpio")
	content := append([]byte("070701"), bytes.Repeat([]byte("tampered-ramdisk "), 4096)...) // newc magic: ipa-oci checks it
	if err := os.WriteFile(ramdisk, content, 0o644); err != nil {
		t.Fatal(err)
	}
	ref := s.reg.Host + "/ironic/tampered:1"
	stdout, stderr, err := ipaOCI(ctx, s, []string{"SSL_CERT_FILE=" + s.ca.CertFile}, "push", ref, "--kernel", s.art.Kernel, "--initramfs", ramdisk, "--ironic")
	if err != nil {
		t.Fatalf("push %s: %v\n%s", ref, err, stderr)
	}
	u := parseSettings(t, stdout)
	sum := sha256.Sum256(content)
	hexsum := hex.EncodeToString(sum[:])
	blob := filepath.Join(s.reg.Storage, "docker/registry/v2/blobs/sha256", hexsum[:2], hexsum, "data")
	bad := bytes.Clone(content)
	copy(bad, "TAMPERED")
	if err := os.WriteFile(blob, bad, 0o644); err != nil {
		t.Fatalf("tamper with %s: %v", blob, err)
	}
	return u
}

func slowFlow(ctx context.Context, t *testing.T, s *stack, settings map[string]ironicURLs) {
	ir := startIronic(ctx, t, s, IronicConfig{FastTrack: false})
	const mac = "52:54:00:12:80:02"
	n := enroll(ctx, t, ir, "node-no-fast-track", mac)
	setDriverInfo(ctx, t, ir, n, settings["tls"])
	provision(ctx, t, ir, n.UUID, "manage", 2*time.Minute, "manageable")
	disk := filepath.Join(t.TempDir(), "disk0.raw")
	bmc := StartBMC(ctx, ir, n.UUID, vmStarter(ctx, s.art, mac, disk, t.TempDir()))
	t.Cleanup(func() {
		bmc.Stop()
		for i, b := range bmc.Boots() {
			keepLog(t, fmt.Sprintf("boot%d-console.log", i+1), b.VM.Output())
			if t.Failed() {
				t.Logf("--- boot %d (%s) serial console (tail) ---\n%s", i+1, b.State, b.VM.ConsoleTail(20000))
			}
		}
	})
	// Cleaning has been proven in the fast-track flow; here it would cost a whole extra boot
	// (~2 min under TCG) of the CI budget, so this node skips it and the agent boots for the
	// deploy alone.
	if err := ir.Patch(ctx, n.UUID, map[string]any{"op": "replace", "path": "/automated_clean", "value": false}); err != nil {
		t.Fatal(err)
	}
	provision(ctx, t, ir, n.UUID, "provide", 2*time.Minute, "available")
	if len(bmc.Boots()) != 0 {
		t.Fatalf("provide without cleaning booted the agent")
	}

	setInstance(ctx, t, ir, n.UUID, s.image)
	if err := ir.Provision(ctx, n.UUID, "active"); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, n.UUID, 10*time.Minute, "active"); err != nil {
		t.Fatal(err)
	}
	active := time.Now()
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer pcancel()
	if err := bmc.WaitPoweredOff(pctx); err != nil {
		t.Fatalf("after deploy: %v", err)
	}
	checkMarker(t, disk, s.image)
	boots := bmc.Boots()
	if len(boots) != 1 || boots[0].State != "wait call-back" {
		t.Fatalf("without fast track: %d agent boots, want 1 for the deploy", len(boots))
	}
	reportTimes(t, boots[0], active)
}

// reportTimes logs the deploy boot's timeline from QEMU start (benchmark numbers for the
// docs, not assertions).
func reportTimes(t *testing.T, b *Boot, active time.Time) {
	at := func(s string) string {
		if l, ok := b.Console.First(s); ok {
			return fmt.Sprintf("%.1f s", l.Time.Sub(b.Started).Seconds())
		}
		return "?"
	}
	t.Logf("deploy boot timeline from QEMU start: lookup %s, first heartbeat %s, image written %s, active %.1f s",
		at("Lookup succeeded"), at("heartbeat successful"), at("written to device"), active.Sub(b.Started).Seconds())
	// Where the boot spends its time (serial console milestones).
	var steps []string
	for _, m := range []struct{ name, line string }{
		{"iPXE", "iPXE"}, {"ramdisk fetched", "deploy_ramdisk... ok"}, {"kernel", "Linux version"},
		{"initramfs unpacked", "Freeing unused kernel image"}, {"init", "ipa-init: boot mode"},
		{"udev settled", "ipa-init: modules:"}, {"network", "ipa-init: dhcp bound"},
		{"agent started", "ipa-init: starting"}, {"agent running", "Starting ironic-python-agent version"},
	} {
		steps = append(steps, m.name+" "+at(m.line))
	}
	t.Logf("console milestones from QEMU start: %s", strings.Join(steps, ", "))
}
