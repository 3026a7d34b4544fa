package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/term"
)

// Stdio is the user's end of an attached container (`ipa-oci make`, `ipa-oci shell`).
type Stdio struct {
	// Stdin is copied into the container's standard input (nil: none). When it is the
	// terminal (Terminal), the container gets a TTY.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output (with a TTY, both go to Stdout).
	Stdout, Stderr io.Writer
	// Terminal, when set, is the host terminal: it is put in raw mode while the container
	// runs, the container gets a TTY of the terminal's size, and resizes follow (SIGWINCH).
	Terminal *os.File
}

// ExitError is a make or shell that exited non-zero in the builder container.
type ExitError struct {
	What string // "make" or "shell"
	Code int64
	// Hint says what may have gone wrong (a source missing from the download cache), or "".
	Hint string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s exited with code %d in the builder container", e.What, e.Code)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// runAttached runs one hardened container (hardenedHostConfig, as every phase) with the
// user's stdin, stdout and stderr attached instead of the log pipeline, and waits for it. With
// sio.Terminal the container gets a TTY (curses programs such as menuconfig need one) and the
// host terminal is in raw mode meanwhile, so keys (Ctrl-C too) reach the program in the
// container. watch, if set, sees everything the container writes. The container is always
// removed; when ctx is cancelled it is killed first.
func runAttached(ctx context.Context, cli client.APIClient, spec runSpec, workDir string, sio Stdio, watch io.Writer) (int64, error) {
	tty := sio.Terminal != nil
	env := spec.env
	if tty {
		env = setEnv(env, "TERM", terminalType())
	}
	cctx, cancelCreate := context.WithTimeout(ctx, apiTimeout)
	defer cancelCreate()
	cr, err := cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        spec.image,
			Cmd:          spec.cmd,
			Env:          env,
			User:         spec.user,
			WorkingDir:   workDir,
			Labels:       spec.labels,
			Tty:          tty,
			OpenStdin:    sio.Stdin != nil,
			StdinOnce:    sio.Stdin != nil,
			AttachStdin:  sio.Stdin != nil,
			AttachStdout: true,
			AttachStderr: true,
		},
		HostConfig: hardenedHostConfig(spec),
	})
	if err != nil {
		return 0, fmt.Errorf("%s: create builder container from %s: %w", spec.phase, spec.image, err)
	}
	cleanup := context.WithoutCancel(ctx)
	defer func() {
		rctx, cancel := context.WithTimeout(cleanup, 60*time.Second)
		defer cancel()
		cli.ContainerRemove(rctx, cr.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}()
	att, err := cli.ContainerAttach(ctx, cr.ID, client.ContainerAttachOptions{Stream: true, Stdin: sio.Stdin != nil, Stdout: true, Stderr: true})
	if err != nil {
		return 0, fmt.Errorf("%s: attach to builder container: %w", spec.phase, err)
	}
	defer att.Close()
	wait := cli.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})

	stdout, stderr := sio.Stdout, sio.Stderr
	if watch != nil {
		stdout, stderr = io.MultiWriter(stdout, watch), io.MultiWriter(stderr, watch)
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		if tty {
			io.Copy(stdout, att.Reader)
		} else {
			stdcopy.StdCopy(stdout, stderr, att.Reader)
		}
	}()

	if tty {
		fd := int(sio.Terminal.Fd())
		if st, err := term.MakeRaw(fd); err == nil {
			defer term.Restore(fd, st)
		}
	}
	sctx, cancelStart := context.WithTimeout(ctx, apiTimeout)
	defer cancelStart()
	if _, err := cli.ContainerStart(sctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return 0, fmt.Errorf("%s: start builder container: %w", spec.phase, err)
	}
	if tty {
		stop := followTerminalSize(ctx, cli, cr.ID, sio.Terminal)
		defer stop()
	}
	if sio.Stdin != nil {
		go func() {
			io.Copy(att.Conn, sio.Stdin)
			att.CloseWrite() // the program in the container sees end of input
		}()
	}

	select {
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(cleanup, 30*time.Second)
		cli.ContainerKill(kctx, cr.ID, client.ContainerKillOptions{})
		cancel()
		return 0, fmt.Errorf("%s cancelled, builder container killed: %w", spec.phase, context.Cause(ctx))
	case err := <-wait.Error:
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%s cancelled: %w", spec.phase, context.Cause(ctx))
		}
		return 0, fmt.Errorf("%s: wait for builder container: %w", spec.phase, err)
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			return 0, fmt.Errorf("%s: builder container: %s", spec.phase, res.Error.Message)
		}
		select { // the output stream ends when the container's output is closed
		case <-outDone:
		case <-time.After(30 * time.Second):
			att.Close()
			<-outDone
		}
		return res.StatusCode, nil
	}
}

// followTerminalSize gives the container's TTY the terminal's size now and after every
// SIGWINCH, until the returned function is called.
func followTerminalSize(ctx context.Context, cli client.APIClient, id string, t *os.File) func() {
	resize := func() {
		w, h, err := term.GetSize(int(t.Fd()))
		if err != nil || w <= 0 || h <= 0 {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		cli.ContainerResize(rctx, id, client.ContainerResizeOptions{Width: uint(w), Height: uint(h)})
	}
	resize()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				resize()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}

// terminalType is the TERM a container on the user's terminal gets: the host's when the
// builder image's ncurses knows it (Debian's ncurses-base), else xterm.
func terminalType() string {
	t := os.Getenv("TERM")
	switch t {
	case "xterm", "xterm-256color", "xterm-color", "xterm-mono", "linux", "vt100", "vt102", "vt220",
		"screen", "screen-256color", "tmux", "tmux-256color", "rxvt", "rxvt-unicode", "rxvt-unicode-256color",
		"ansi", "putty", "putty-256color", "dumb":
		return t
	}
	return "xterm"
}

// setEnv sets name=value in env, replacing an existing entry.
func setEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// IsTerminal says whether f is a terminal (for Stdio.Terminal).
func IsTerminal(f *os.File) bool { return f != nil && term.IsTerminal(int(f.Fd())) }
