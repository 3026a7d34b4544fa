package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"
)

// GuestHost is the address under which the QEMU user-mode guest reaches its host. Inside the
// test's network namespace it is also on lo, so Ironic's URLs work for conductor and guest.
const GuestHost = "10.0.2.2"

// Ports inside the namespace.
const (
	IronicPort   = 6385
	HTTPRootPort = 8080 // Ironic's [deploy]http_root, served by busybox httpd
	ImagePort    = 8081 // the instance image server
	RegistryPort = 5443 // Distribution over TLS
	PlainPort    = 5000 // Distribution over plain HTTP (negative cell)
	AgentPort    = 9999 // the agent's API, forwarded by QEMU to the guest
)

// IronicConfig selects what differs between the test's Ironic runs.
type IronicConfig struct {
	FastTrack bool
}

// Ironic is the all-in-one /usr/bin/ironic (API + conductor, rpc_transport=none) running in
// the trixie chroot, in a private mount namespace: the cached chroot is the lower layer of an
// overlay, State is bind-mounted at the same path inside so that paths (and symlinks) in
// http_root mean the same thing to Ironic and to the web server outside the chroot.
type Ironic struct {
	API   string // http://10.0.2.2:6385
	State string // config, sqlite database, logs, http_root
	Log   string // the conductor + API log file

	root   string // the overlay's mount point: the chroot, seen only in Ironic's mount namespace
	cmd    *exec.Cmd
	done   chan struct{}
	output bytes.Buffer
	mu     sync.Mutex
	client *http.Client
}

const ironicConf = `[DEFAULT]
auth_strategy = noauth
rpc_transport = none
host = ipa-oci-acceptance
my_ip = {{.Host}}
debug = true
log_file = {{.State}}/ironic.log
use_stderr = false
state_path = {{.State}}/state
tempdir = {{.State}}/tmp
enabled_hardware_types = manual-management
enabled_power_interfaces = fake
enabled_management_interfaces = noop
enabled_boot_interfaces = ipxe
enabled_deploy_interfaces = direct
enabled_network_interfaces = noop
enabled_inspect_interfaces = no-inspect,agent
enabled_console_interfaces = no-console
enabled_raid_interfaces = no-raid,agent
enabled_vendor_interfaces = no-vendor
enabled_bios_interfaces = no-bios
enabled_firmware_interfaces = no-firmware
default_inspect_interface = agent

[api]
host_ip = 0.0.0.0
port = {{.IronicPort}}
# The agent heartbeats every 0.3-0.6 of this (default 300 s); short so that steps move on.
ramdisk_heartbeat_timeout = 20

[conductor]
automated_clean = true
check_provision_state_interval = 5
sync_power_state_interval = -1
deploy_callback_timeout = 900
clean_callback_timeout = 900

[database]
connection = sqlite:///{{.State}}/ironic.sqlite

[dhcp]
dhcp_provider = none

[deploy]
http_url = http://{{.Host}}:{{.HTTPRootPort}}
http_root = {{.State}}/httproot
default_boot_mode = bios
fast_track = {{.FastTrack}}
erase_devices_priority = 0
erase_devices_metadata_priority = 10

[pxe]
tftp_root = {{.State}}/tftp
tftp_master_path = {{.State}}/tftp/master_images
images_path = {{.State}}/images
instance_master_path = {{.State}}/master_images
kernel_append_params = console=ttyS0,115200 panic=-1 ipa-advertise-host={{.Host}} ipa-debug=1

[agent]
image_download_source = local
deploy_logs_collect = never
# Fake power cannot see the agent's soft power-off: poll once, not 6 x 5 s.
post_deploy_get_power_state_retries = 1
post_deploy_get_power_state_retry_interval = 1

[inspector]
hooks = $default_hooks,memory,root-device

[service_catalog]
endpoint_override = http://{{.Host}}:{{.IronicPort}}

[oslo_concurrency]
lock_path = {{.State}}/lock
`

// StartIronic writes ironic.conf into a new state directory under dir, trusts caFile in the
// chroot's system store (update-ca-certificates), creates the sqlite schema and starts
// /usr/bin/ironic. It must run inside the test's network namespace. Stop it with Stop.
func StartIronic(ctx context.Context, chroot, dir, caFile string, cfg IronicConfig) (*Ironic, error) {
	state := filepath.Join(dir, "ironic")
	for _, d := range []string{"state", "tmp", "httproot", "tftp/master_images", "images", "master_images", "lock"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			return nil, err
		}
	}
	var conf bytes.Buffer
	tmpl := template.Must(template.New("ironic.conf").Parse(ironicConf))
	if err := tmpl.Execute(&conf, map[string]any{
		"Host": GuestHost, "State": state, "IronicPort": IronicPort, "HTTPRootPort": HTTPRootPort, "FastTrack": cfg.FastTrack,
	}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(state, "ironic.conf"), conf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged, filepath.Join(upper, "usr/local/share/ca-certificates")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(upper, "usr/local/share/ca-certificates/ipa-oci-test-ca.crt"), ca, 0o644); err != nil {
		return nil, err
	}
	// Everything mounted here lives in the mount namespace of this one process tree and goes
	// away with it, also when it is killed.
	script := `set -e
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$MERGED"
mount -t proc proc "$MERGED/proc"
mount --rbind /dev "$MERGED/dev"
mkdir -p "$MERGED$STATE"
mount --bind "$STATE" "$MERGED$STATE"
in_root() { chroot "$MERGED" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
in_root update-ca-certificates >/dev/null
in_root ironic-dbsync --config-file "$STATE/ironic.conf" create_schema >"$STATE/dbsync.log" 2>&1
exec chroot "$MERGED" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
	/usr/bin/ironic --config-file "$STATE/ironic.conf"
`
	ir := &Ironic{
		API: fmt.Sprintf("http://%s:%d", GuestHost, IronicPort), State: state, Log: filepath.Join(state, "ironic.log"), root: merged,
		done: make(chan struct{}), client: &http.Client{Timeout: 60 * time.Second},
	}
	ir.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script)
	ir.cmd.Env = append(os.Environ(), "LOWER="+chroot, "UPPER="+upper, "WORK="+work, "MERGED="+merged, "STATE="+state)
	ir.cmd.Stdout = &lockedBuffer{mu: &ir.mu, b: &ir.output}
	ir.cmd.Stderr = ir.cmd.Stdout
	if err := ir.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ironic: %w", err)
	}
	go func() { _ = ir.cmd.Wait(); close(ir.done) }()
	// Ready when the API answers and the conductor has registered the hardware type.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var drivers struct {
			Drivers []struct{ Name string } `json:"drivers"`
		}
		err := ir.Do(ctx, "GET", "/v1/drivers", nil, &drivers)
		if err == nil && len(drivers.Drivers) > 0 {
			return ir, nil
		}
		select {
		case <-ir.done:
			return nil, fmt.Errorf("ironic exited at start: %s\n%s", ir.Output(), ir.LogTail(4000))
		case <-ctx.Done():
			ir.Stop()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			ir.Stop()
			return nil, fmt.Errorf("ironic API not ready on %s after 3 min (%v)\n%s", ir.API, err, ir.LogTail(4000))
		}
	}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Output is what the start script and ironic printed (before logging to the file).
func (ir *Ironic) Output() string {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.output.String()
}

// Stop kills Ironic by PID and waits for it; its mounts go with its mount namespace.
func (ir *Ironic) Stop() {
	select {
	case <-ir.done:
		return
	default:
	}
	_ = ir.cmd.Process.Kill()
	<-ir.done
}

// PID is the process ID of /usr/bin/ironic (the start script execs it).
func (ir *Ironic) PID() int { return ir.cmd.Process.Pid }

// LogText returns Ironic's log file.
func (ir *Ironic) LogText() string {
	b, _ := os.ReadFile(ir.Log)
	return string(b)
}

// LogTail returns the last n bytes of Ironic's log.
func (ir *Ironic) LogTail(n int) string { return tail(ir.LogText(), n) }

// Exec runs a command inside Ironic's chroot and mount namespace (nsenter), with env added.
func (ir *Ironic) Exec(ctx context.Context, env []string, args ...string) (string, error) {
	full := append([]string{"--target", fmt.Sprint(ir.PID()), "--mount", "--", "chroot", ir.root,
		"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=/root"}, env...)
	full = append(full, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s (in the Ironic chroot): %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Baremetal runs python3-ironicclient's `baremetal` CLI against this Ironic (noauth).
func (ir *Ironic) Baremetal(ctx context.Context, args ...string) (string, error) {
	return ir.Exec(ctx, []string{"OS_ENDPOINT=" + ir.API, "OS_AUTH_TYPE=none"}, append([]string{"baremetal"}, args...)...)
}

// APIError is a non-2xx answer of the Ironic API.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("ironic API: HTTP %d: %s", e.Status, e.Body) }

// Do sends one API request (JSON in, JSON out) with the newest microversion.
func (ir *Ironic) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, ir.API+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := ir.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, &APIError{resp.StatusCode, string(b)})
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Node is the part of an Ironic node the test looks at.
type Node struct {
	UUID                 string         `json:"uuid"`
	Name                 string         `json:"name"`
	ProvisionState       string         `json:"provision_state"`
	TargetProvisionState *string        `json:"target_provision_state"`
	PowerState           *string        `json:"power_state"`
	LastError            *string        `json:"last_error"`
	Maintenance          bool           `json:"maintenance"`
	ParentNode           *string        `json:"parent_node"`
	DriverInfo           map[string]any `json:"driver_info"`
	DriverInternalInfo   map[string]any `json:"driver_internal_info"`
	InstanceInfo         map[string]any `json:"instance_info"`
	Properties           map[string]any `json:"properties"`
}

// Power is the node's power state ("" when unknown).
func (n *Node) Power() string {
	if n.PowerState == nil {
		return ""
	}
	return *n.PowerState
}

// Error is the node's last_error ("" when none).
func (n *Node) Error() string {
	if n.LastError == nil {
		return ""
	}
	return *n.LastError
}

// CreateNode enrolls a manual-management node with fake power and the agent inspector.
func (ir *Ironic) CreateNode(ctx context.Context, name string, driverInfo map[string]any) (*Node, error) {
	var n Node
	err := ir.Do(ctx, "POST", "/v1/nodes", map[string]any{
		"name": name, "driver": "manual-management", "driver_info": driverInfo,
		"boot_interface": "ipxe", "deploy_interface": "direct", "inspect_interface": "agent",
		"power_interface": "fake", "management_interface": "noop", "network_interface": "noop",
	}, &n)
	return &n, err
}

// CreatePort adds a PXE-enabled port with mac to the node.
func (ir *Ironic) CreatePort(ctx context.Context, nodeUUID, mac string) error {
	return ir.Do(ctx, "POST", "/v1/ports", map[string]any{"node_uuid": nodeUUID, "address": mac, "pxe_enabled": true}, nil)
}

// Patch applies a JSON patch to the node, then works around the Debian Ironic bug that sets
// parent_node on every PATCH (see ClearParentNode).
func (ir *Ironic) Patch(ctx context.Context, uuid string, ops ...map[string]any) error {
	if err := ir.Do(ctx, "PATCH", "/v1/nodes/"+uuid, ops, nil); err != nil {
		return err
	}
	return ir.ClearParentNode(ctx, uuid)
}

// ClearParentNode is the workaround for a bug in Debian trixie's Ironic 1:29.0.5-0+deb13u3:
// NodesController.patch() in ironic/api/controllers/v1/node.py (line 3140) does
//
//	if parent_node := api_utils.authorize_node_link_patch(rpc_node, patch, 'parent_node'):
//	    corrected_values['parent_node'] = parent_node.uuid
//
// and authorize_node_link_patch (ironic/api/controllers/v1/utils.py) returns the node itself
// when the patch does not touch /parent_node, so every PATCH makes the node its own parent
// and a later deploy fails with ChildNodeLocked. Clear the column after each PATCH.
func (ir *Ironic) ClearParentNode(ctx context.Context, uuid string) error {
	_, err := ir.Exec(ctx, nil, "sqlite3", filepath.Join(ir.State, "ironic.sqlite"),
		fmt.Sprintf("UPDATE nodes SET parent_node = NULL WHERE uuid = '%s' AND parent_node = uuid;", uuid))
	return err
}

// Provision asks for a provision state change (manage, inspect, provide, active, ...).
func (ir *Ironic) Provision(ctx context.Context, uuid, target string) error {
	return ir.Do(ctx, "PUT", "/v1/nodes/"+uuid+"/states/provision", map[string]any{"target": target}, nil)
}

// Node fetches a node.
func (ir *Ironic) Node(ctx context.Context, uuid string) (*Node, error) {
	var n Node
	err := ir.Do(ctx, "GET", "/v1/nodes/"+uuid, nil, &n)
	return &n, err
}

// ErrTimeout is returned by WaitState when the node did not settle in time.
var ErrTimeout = errors.New("timed out")

// WaitState polls the node until its provision_state is one of states and no transition is
// pending (a wanted "... failed" state counts at once), and returns it. A node that settles in another stable state (e.g. "clean
// failed") is returned with an error naming the state and last_error.
func (ir *Ironic) WaitState(ctx context.Context, uuid string, timeout time.Duration, states ...string) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *Node
	for {
		n, err := ir.Node(ctx, uuid)
		if err == nil {
			last = n
			pending := n.TargetProvisionState != nil && *n.TargetProvisionState != ""
			for _, s := range states {
				// A failed state keeps the target it failed to reach ("clean failed" -> available).
				if n.ProvisionState == s && (!pending || strings.HasSuffix(s, "failed")) {
					return n, nil
				}
			}
			if !pending && strings.HasSuffix(n.ProvisionState, "failed") {
				return n, fmt.Errorf("node %s is %q, not %v: %s", n.Name, n.ProvisionState, states, n.Error())
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return nil, fmt.Errorf("node %s: %w (%v)", uuid, ErrTimeout, err)
			}
			return last, fmt.Errorf("node %s still %q (target %v) after %s, want %v: %w; last_error: %s",
				last.Name, last.ProvisionState, deref(last.TargetProvisionState), timeout, states, ErrTimeout, last.Error())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
