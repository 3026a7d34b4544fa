package builder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// lastLinesKept is how many log lines a failure message quotes.
const lastLinesKept = 25

// apiTimeout bounds each short Docker Engine API call (inspect, create, start, list). The
// calls that last as long as a container (attach, wait) are bounded by the container instead,
// and by ctx: cancelling it kills the container.
const apiTimeout = 2 * time.Minute

// pidsLimit caps the processes of a phase container: far above what Buildroot needs with
// many parallel jobs, low enough that a fork bomb cannot starve the host.
const pidsLimit int64 = 4096

// pidsLimitWarning is logged when the engine ignores the pids limit.
func pidsLimitWarning() string {
	return fmt.Sprintf("rootless Podman on a cgroup v1 host does not apply the pids limit (%d): the build's processes "+
		"are bounded only by your own process limit (ulimit -u); use a cgroup v2 host or rootful Podman for the limit", pidsLimit)
}

// containerTmpfs are the writable scratch directories of the otherwise read-only root
// filesystem (HOME=/tmp). exec: configure scripts and pip run what they build there.
func containerTmpfs() map[string]string {
	return map[string]string{
		"/tmp":     "rw,exec,nosuid,nodev,mode=1777",
		"/var/tmp": "rw,exec,nosuid,nodev,mode=1777",
	}
}

// ContainerExitError is returned when a phase's container exits non-zero.
type ContainerExitError struct {
	Phase     string
	Code      int64
	LastLines []string
}

func (e *ContainerExitError) Error() string {
	return fmt.Sprintf("%s phase: builder container exited with code %d; last log lines:\n  %s",
		e.Phase, e.Code, strings.Join(e.LastLines, "\n  "))
}

// runSpec is one container run: a phase of the build.
type runSpec struct {
	phase   string
	image   string
	cmd     []string
	env     []string
	user    string
	mounts  []mount.Mount
	network string // "none", "default" or "host"
	labels  map[string]string
	userns  string // set by runContainer: engineFacts.usernsMode
}

// runStats are timestamps of one run, for the benchmark.
type runStats struct {
	created, started, firstLine, exited, removed time.Time
	lines, bytes                                 int
}

// logSink receives every log line of a run.
type logSink struct {
	log      logrus.FieldLogger
	file     io.Writer                // build.log (may be nil)
	progress *progressLine            // nil unless stderr is a terminal
	watch    func(phase, line string) // sees every line (may be nil)
	mu       sync.Mutex
}

func (s *logSink) line(phase, l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		fmt.Fprintf(s.file, "[%s] %s\n", phase, l)
	}
	s.progress.clear()
	s.log.WithField("phase", phase).Info(l)
	s.progress.update(phase, l)
	if s.watch != nil {
		s.watch(phase, l)
	}
}

// runContainer creates, attaches to, starts and waits for one container, streaming its output
// line by line to sink. The container is always removed; when ctx is cancelled it is killed
// first (with a fresh context, so cleanup works after Ctrl-C).
func runContainer(ctx context.Context, cli client.APIClient, spec runSpec, sink *logSink) (st runStats, err error) {
	cctx, cancelCreate := context.WithTimeout(ctx, apiTimeout)
	defer cancelCreate()
	facts, err := probeEngine(cctx, cli)
	if err != nil {
		return st, fmt.Errorf("%s phase: %w", spec.phase, err)
	}
	spec.userns = facts.usernsMode()
	if facts.pidsLimitIgnored() {
		sink.log.WithField("phase", spec.phase).Warn(pidsLimitWarning())
	}
	cr, err := cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        spec.image,
			Cmd:          spec.cmd,
			Env:          spec.env,
			User:         spec.user,
			WorkingDir:   "/ipa",
			Labels:       spec.labels,
			AttachStdout: true,
			AttachStderr: true,
		},
		HostConfig: hardenedHostConfig(spec),
	})
	if err != nil {
		return st, fmt.Errorf("%s phase: create builder container from %s: %w", spec.phase, spec.image, err)
	}
	st.created = time.Now()
	for _, w := range cr.Warnings {
		sink.log.WithField("phase", spec.phase).Warn("engine: " + w)
	}
	cleanup := context.WithoutCancel(ctx)
	defer func() {
		rctx, cancel := context.WithTimeout(cleanup, 60*time.Second)
		defer cancel()
		if _, rerr := cli.ContainerRemove(rctx, cr.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil {
			sink.log.WithError(rerr).WithField("container", cr.ID).Warn("could not remove builder container; remove it by label " + LabelManaged + "=true")
		}
		st.removed = time.Now()
	}()

	att, err := cli.ContainerAttach(ctx, cr.ID, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return st, attachError(ctx, cli, cr.ID, spec.phase, err, sink)
	}
	defer att.Close()
	// Wait is registered before start so a fast exit cannot be missed.
	wait := cli.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})

	ring := newRing(lastLinesKept)
	pr, pw := io.Pipe()
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, att.Reader)
		pw.CloseWithError(err)
		copied <- err
	}()
	linesDone := make(chan struct{})
	defer func() { att.Close(); <-linesDone }()
	go func() {
		defer close(linesDone)
		br := bufio.NewReaderSize(pr, 64*1024)
		for {
			s, err := br.ReadString('\n')
			if s != "" {
				if st.lines == 0 {
					st.firstLine = time.Now()
				}
				st.lines++
				st.bytes += len(s)
				l := cleanLine(s)
				ring.add(l)
				sink.line(spec.phase, l)
			}
			if err != nil {
				io.Copy(io.Discard, pr)
				return
			}
		}
	}()

	sctx, cancelStart := context.WithTimeout(ctx, apiTimeout)
	defer cancelStart()
	if _, err := cli.ContainerStart(sctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return st, fmt.Errorf("%s phase: start builder container: %w", spec.phase, err)
	}
	st.started = time.Now()

	var code int64
	select {
	case <-ctx.Done():
		return st, killOnCancel(ctx, cli, cr.ID, spec.phase, sink)
	case err := <-wait.Error:
		// The wait request shares ctx, so a cancellation can surface here first.
		if ctx.Err() != nil {
			return st, killOnCancel(ctx, cli, cr.ID, spec.phase, sink)
		}
		return st, fmt.Errorf("%s phase: wait for builder container: %w", spec.phase, err)
	case res := <-wait.Result:
		st.exited = time.Now()
		if res.Error != nil && res.Error.Message != "" {
			return st, fmt.Errorf("%s phase: builder container: %s", spec.phase, res.Error.Message)
		}
		code = res.StatusCode
	}
	// The attach stream ends when the container's output is closed.
	select {
	case <-linesDone:
	case <-time.After(30 * time.Second):
		att.Close()
		<-linesDone
	}
	if code != 0 {
		return st, &ContainerExitError{Phase: spec.phase, Code: code, LastLines: ring.lines()}
	}
	return st, nil
}

// hardenedHostConfig is every phase container's host configuration: no capabilities at all
// (not even in the bounding set), no-new-privileges (setuid binaries gain nothing), a pids
// limit, a read-only root filesystem with tmpfs scratch directories, and spec's mounts, which
// are read-only except the phase's outputs. The engine's --init reaps zombies. On rootless
// Podman the user namespace keeps the invoking user's id (engineFacts.usernsMode).
func hardenedHostConfig(spec runSpec) *container.HostConfig {
	pids := pidsLimit
	return &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.network),
		Mounts:         spec.mounts,
		Init:           boolPtr(true),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Tmpfs:          containerTmpfs(),
		Resources:      container.Resources{PidsLimit: &pids},
		UsernsMode:     container.UsernsMode(spec.userns),
	}
}

// attachError returns the engine's own reason for a failed attach. Podman prepares a created
// container when a client attaches to it, and when that fails (an unknown user, an rlimit the
// host refuses, a missing init binary) it answers 409 with its reason in a body the client
// library drops: "unable to upgrade to tcp, received 409". Starting the container makes the
// engine report the same failure with its own message. Should the start succeed, the caller's
// deferred forced removal kills the unattached container.
func attachError(ctx context.Context, cli client.APIClient, id, phase string, attachErr error, sink *logSink) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s phase: attach to builder container: %w", phase, attachErr)
	}
	sink.log.WithError(attachErr).WithField("phase", phase).Debug("attach failed; starting the container for the engine's reason")
	sctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if _, err := cli.ContainerStart(sctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("%s phase: start builder container: %w", phase, err)
	}
	return fmt.Errorf("%s phase: attach to builder container: %w", phase, attachErr)
}

// killOnCancel kills the container with a fresh context (the deferred remove then deletes it)
// and returns the cancellation error.
func killOnCancel(ctx context.Context, cli client.APIClient, id, phase string, sink *logSink) error {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := cli.ContainerKill(kctx, id, client.ContainerKillOptions{}); err != nil {
		sink.log.WithError(err).Debug("kill builder container")
	}
	return fmt.Errorf("%s phase cancelled, builder container killed: %w", phase, context.Cause(ctx))
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]`)

// cleanLine drops the newline, carriage returns and terminal escape sequences (Buildroot
// colours its ">>>" lines with tput).
func cleanLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	return ansiRE.ReplaceAllString(s, "")
}

// ring keeps the last n lines.
type ring struct {
	mu  sync.Mutex
	buf []string
	n   int
}

func newRing(n int) *ring { return &ring{n: n} }

func (r *ring) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, s)
	if len(r.buf) > r.n {
		r.buf = r.buf[len(r.buf)-r.n:]
	}
}

func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.buf...)
}

func boolPtr(b bool) *bool { return &b }
