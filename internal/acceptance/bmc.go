package acceptance

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/ipa-oci/ipa-oci/internal/boottest"
)

// WebServer is a busybox httpd serving a directory on 0.0.0.0:port (inside the namespace).
type WebServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	buf  strings.Builder
	mu   sync.Mutex
}

// StartWebServer starts `busybox httpd -f -vv -p 0.0.0.0:PORT -h dir`, a real web server
// whose access log (-vv) the test reads.
func StartWebServer(ctx context.Context, dir string, port int) (*WebServer, error) {
	w := &WebServer{done: make(chan struct{})}
	w.cmd = exec.Command("busybox", "httpd", "-f", "-vv", "-p", fmt.Sprintf("0.0.0.0:%d", port), "-h", dir)
	out := &builderWriter{mu: &w.mu, b: &w.buf}
	w.cmd.Stdout, w.cmd.Stderr = out, out
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("busybox httpd on :%d (apt-get install busybox-static): %w", port, err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	return w, nil
}

type builderWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *builderWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Log returns the access log so far.
func (w *WebServer) Log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Stop kills the server by PID.
func (w *WebServer) Stop() {
	select {
	case <-w.done:
	default:
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// Boot is one power-on of the VM by the BMC.
type Boot struct {
	Started time.Time
	VM      *boottest.VM
	Console *Console
	State   string // the node's provision_state when it was powered on
}

// BMC plays the node's baseboard management controller for Ironic's fake power interface: it
// polls the node and starts QEMU when Ironic has powered the node on and waits for the agent
// (inspect wait, clean wait, wait call-back), and kills QEMU when Ironic powers it off.
type BMC struct {
	ir   *Ironic
	uuid string
	vm   func(console *Console) (*boottest.VM, error)

	mu    sync.Mutex
	boots []*Boot
	err   error
	stop  context.CancelFunc
	done  chan struct{}
}

// waitStates are the provision states in which Ironic waits for the agent to boot.
var waitStates = map[string]bool{"inspect wait": true, "clean wait": true, "wait call-back": true, "service wait": true}

// StartBMC starts polling node uuid; vm starts one QEMU boot writing its console to console.
func StartBMC(ctx context.Context, ir *Ironic, uuid string, vm func(console *Console) (*boottest.VM, error)) *BMC {
	ctx, cancel := context.WithCancel(ctx)
	b := &BMC{ir: ir, uuid: uuid, vm: vm, stop: cancel, done: make(chan struct{})}
	go b.run(ctx)
	return b
}

func (b *BMC) run(ctx context.Context) {
	defer close(b.done)
	for {
		select {
		case <-ctx.Done():
			b.powerOff()
			return
		case <-time.After(300 * time.Millisecond):
		}
		n, err := b.ir.Node(ctx, b.uuid)
		if err != nil {
			continue
		}
		running := b.running()
		switch {
		case n.Power() == "power on" && waitStates[n.ProvisionState] && running == nil:
			c := NewConsole()
			vm, err := b.vm(c)
			if err != nil {
				b.mu.Lock()
				b.err = fmt.Errorf("power on %s: %w", n.Name, err)
				b.mu.Unlock()
				return
			}
			b.mu.Lock()
			b.boots = append(b.boots, &Boot{Started: vm.Started(), VM: vm, Console: c, State: n.ProvisionState})
			b.mu.Unlock()
		case n.Power() == "power off" && running != nil:
			running.Stop()
		}
	}
}

// running returns the VM of the last boot if QEMU is still running.
func (b *BMC) running() *boottest.VM {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.boots) == 0 {
		return nil
	}
	vm := b.boots[len(b.boots)-1].VM
	select {
	case <-vm.Done():
		return nil
	default:
		return vm
	}
}

func (b *BMC) powerOff() {
	if vm := b.running(); vm != nil {
		vm.Stop()
	}
}

// Boots returns the boots so far.
func (b *BMC) Boots() []*Boot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Boot(nil), b.boots...)
}

// Err returns why the BMC stopped, if it failed.
func (b *BMC) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// WaitPoweredOff waits until the last boot's QEMU has exited (the agent powered the VM off
// or Ironic did).
func (b *BMC) WaitPoweredOff(ctx context.Context) error {
	vm := b.running()
	if vm == nil {
		return nil
	}
	select {
	case <-vm.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("VM still running: %w", ctx.Err())
	}
}

// Stop stops polling and kills a running VM.
func (b *BMC) Stop() {
	b.stop()
	<-b.done
}

// Console is a serial console that remembers when each line arrived, to time the boot.
type Console struct {
	mu    sync.Mutex
	lines []ConsoleLine
	part  []byte
}

// ConsoleLine is one line of serial output and when it arrived.
type ConsoleLine struct {
	Time time.Time
	Text string
}

// NewConsole returns an empty console.
func NewConsole() *Console { return &Console{} }

func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.part = append(c.part, p...)
	for {
		i := strings.IndexByte(string(c.part), '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, ConsoleLine{Time: now, Text: strings.TrimRight(string(c.part[:i]), "\r")})
		c.part = c.part[i+1:]
	}
	return len(p), nil
}

// First returns the first line containing s and whether there is one.
func (c *Console) First(s string) (ConsoleLine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l.Text, s) {
			return l, true
		}
	}
	return ConsoleLine{}, false
}
