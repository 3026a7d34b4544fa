package builder

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/arches"
	"github.com/moby/moby/api/types/mount"
	"github.com/sirupsen/logrus"
)

// proxyVars are the only host environment variables passed into the builder container.
var proxyVars = []string{"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"}

// makeCmd is the make invocation both phases use. The resolved git inputs override the
// external tree's Kconfig strings on the command line (so Buildroot fetches and builds exactly
// the recorded IPA commit): BR2_IPA_GIT_URL, BR2_IPA_GIT_REF (the commit ID),
// BR2_IPA_REQUIREMENTS_GIT_URL and BR2_IPA_REQUIREMENTS_GIT_REF (the ref as given, which the
// post-build script records; a rebuild passes the recorded ref, not the commit). With a lock
// that has a wheel closure, IPA_OCI_WHEELS_MK names the generated wheel list.
func (b *build) makeCmd() string {
	cmd := fmt.Sprintf("make --no-print-directory -C %s O=%s BR2_EXTERNAL=%s", ContainerBuildroot, ContainerOutput, ContainerExternal)
	for _, v := range b.makeVars() {
		cmd += " " + shellQuote(v)
	}
	return cmd
}

func (b *build) makeVars() []string {
	in := b.info.Inputs
	var vars []string
	if in.IPA != nil {
		vars = append(vars, "BR2_IPA_GIT_URL="+in.IPA.Repo, "BR2_IPA_GIT_REF="+in.IPA.Commit)
	}
	if in.Requirements != nil {
		vars = append(vars, "BR2_IPA_REQUIREMENTS_GIT_URL="+in.Requirements.Repo, "BR2_IPA_REQUIREMENTS_GIT_REF="+in.Requirements.Ref)
	}
	if b.lockDir != "" {
		vars = append(vars, WheelsMkVar+"="+ContainerLock+"/"+WheelsMkName)
	}
	return append(vars, b.o.MakeArgs...) // --make-arg (extras.go)
}

// env is the container environment: what ipa-oci sets plus the host's proxy variables.
func (b *build) env(phase string) []string {
	in := b.info.Inputs
	env := []string{
		"HOME=/tmp",
		"LC_ALL=C.UTF-8",
		"LANG=C.UTF-8",
		"TERM=dumb",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(in.SourceDateEpoch, 10),
		"BR2_DL_DIR=" + ContainerDL,
		"BR_CACHE_DIR=" + ContainerCcache,
		"IPA_OCI_PHASE=" + phase,
		"IPA_OCI_ARCH=" + in.Arch,
		"IPA_OCI_UNAME_ARCH=" + arches.Uname(in.Arch),
		// The git mirrors belong to the host user and are mounted read-only; let git in the
		// container read them as another uid. This is the container's git, never the host's.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*",
	}
	if in.KernelConfig != nil {
		env = append(env, "IPA_OCI_KERNEL_CONFIG_DIR="+ContainerKernelConfig)
	}
	for _, g := range []struct {
		name string
		src  *ResolvedGit
	}{{"IPA", in.IPA}, {"REQUIREMENTS", in.Requirements}} {
		if g.src == nil {
			continue
		}
		env = append(env,
			"IPA_OCI_"+g.name+"_URL="+g.src.Repo,
			"IPA_OCI_"+g.name+"_REF="+g.src.Ref,
			"IPA_OCI_"+g.name+"_COMMIT="+g.src.Commit,
			"IPA_OCI_"+g.name+"_GIT_DIR="+ContainerDL+"/ipa-oci-git/"+mirrorName(g.src.Repo),
		)
	}
	for _, kv := range b.o.HostEnv {
		k, _, _ := strings.Cut(kv, "=")
		for _, p := range proxyVars {
			if k == p || k == strings.ToUpper(p) {
				env = append(env, kv)
			}
		}
	}
	return append(env, b.extraEnv()...) // --env (extras.go)
}

func bind(src, dst string, ro bool) mount.Mount {
	return mount.Mount{Type: mount.TypeBind, Source: src, Target: dst, ReadOnly: ro}
}

// inputMounts are the read-only inputs both phases see: the Buildroot tree, the external tree,
// the kernel config directory and the files generated from the lock.
func (b *build) inputMounts() []mount.Mount {
	ms := []mount.Mount{
		bind(b.brTree, ContainerBuildroot, true),
		bind(b.o.External, ContainerExternal, true),
	}
	if b.o.KernelConfig != "" {
		ms = append(ms, bind(b.o.KernelConfig, ContainerKernelConfig, true))
	}
	if b.lockDir != "" {
		ms = append(ms, bind(b.lockDir, ContainerLock, true))
	}
	return ms
}

// spec is the container of one phase ("fetch" or "build": its environment and label), named
// name (the phase itself, or the make or shell command running as that phase).
func (b *build) spec(name, phase, network string, mounts []mount.Mount, cmd []string) runSpec {
	labels := map[string]string{
		LabelManaged: "true", LabelPhase: phase, LabelBuildID: b.id, LabelOutput: b.o.Output,
	}
	if name != phase {
		labels[LabelCommand] = name
	}
	return runSpec{
		phase:   name,
		image:   b.info.Inputs.BuilderImage.ID,
		cmd:     cmd,
		env:     b.env(phase),
		user:    fmt.Sprintf("%d:%d", b.uid, b.gid),
		mounts:  mounts,
		network: network,
		labels:  labels,
	}
}

// phase runs one phase container with the given network mode ("none", "host", "default"),
// mounts and script.
func (b *build) phase(ctx context.Context, phase, network string, mounts []mount.Mount, script string) error {
	b.log.WithFields(logrus.Fields{"phase": phase, "network": network}).Info("starting phase")
	st, err := runContainer(ctx, b.cli, b.spec(phase, phase, network, mounts, []string{"/bin/bash", "-c", script}), b.sink)
	b.sink.progress.clear()
	b.res.stats = append(b.res.stats, st)
	return err
}
