package builder

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"github.com/moby/moby/api/types/mount"
	"github.com/sirupsen/logrus"
)

// ContainerLockInput is where the lock step's container finds its inputs (read-only): the
// resolver, the agent's requirements.txt, upper-constraints.txt and the request.
const ContainerLockInput = "/ipa/lock-input"

// IPAPackageMk is the external tree's ironic-python-agent package makefile; its
// IRONIC_PYTHON_AGENT_DEPENDENCIES name the python-* Buildroot packages the agent is built with.
const IPAPackageMk = "package/ironic-python-agent/ironic-python-agent.mk"

// ipaDLSubdir is the ironic-python-agent package's download directory in BR2_DL_DIR: the
// lock step leaves the wheels it read there, where the fetch phase's `make source` finds them.
const ipaDLSubdir = "ironic-python-agent"

// maxResolution bounds the resolver's output the host reads.
const maxResolution = 4 << 20

//go:embed lockresolve.py
var resolverScript []byte

// machines maps the architectures to the platform_machine the markers are evaluated with.
var machines = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// ResolveLock resolves every floating input of o and returns the lock: it checks the builder
// image (an unpinned builder.image is pinned by its ID), downloads and verifies the Buildroot
// release (or hashes the local tree), resolves the IPA and requirements refs to commits with
// host-side git, and, when both are set, resolves the agent's wheel closure for every
// architecture inside the builder container (network on, like the fetch phase). Nothing the
// container writes is used except its resolution, which is parsed strictly and validated.
// o.Output is not used.
func ResolveLock(ctx context.Context, o Options) (*Lock, error) {
	b, err := newBuild(ctx, o, true)
	if err != nil {
		return nil, err
	}
	if b.closeDocker {
		defer b.cli.Close()
	}
	return b.resolveLock(ctx)
}

func (b *build) resolveLock(ctx context.Context) (*Lock, error) {
	o := b.o
	if err := b.checkBuilderImage(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DLDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.DLDir, err)
	}
	b.ownForContainer(o.DLDir)
	for _, d := range []string{b.mirrorsDir(), b.stampsDir()} {
		if err := hostOwnedDir(d); err != nil {
			return nil, err
		}
	}
	if err := b.resolveInputs(ctx); err != nil {
		return nil, err
	}
	in := b.info.Inputs
	l := &Lock{
		LockVersion:     LockVersion,
		BuilderImage:    in.BuilderImage.ID,
		IPA:             in.IPA,
		Requirements:    in.Requirements,
		SourceDateEpoch: in.SourceDateEpoch,
		Buildroot:       LockedBuildroot{Version: in.Buildroot.Version},
	}
	if in.Buildroot.Local {
		l.Buildroot.TreeSHA256 = in.Buildroot.TreeSHA256
	} else {
		l.Buildroot.URL, l.Buildroot.SHA256 = in.Buildroot.URL, in.Buildroot.SHA256
	}
	if in.IPA != nil && in.Requirements != nil {
		py, err := b.resolvePython(ctx)
		if err != nil {
			return nil, err
		}
		l.Python = py
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return l, nil
}

// resolvePython runs the resolver in the builder container.
func (b *build) resolvePython(ctx context.Context) (*LockedPython, error) {
	o := b.o
	in := b.info.Inputs
	if o.Offline {
		return nil, errkind.Mark(ErrOffline, "offline: resolving the agent's Python wheels needs the network; run `ipa-oci lock` with the network first")
	}
	index := o.PythonIndex
	if index == "" {
		index = DefaultPythonIndex
	}
	if err := checkURL("pythonIndex", index); err != nil || strings.HasPrefix(index, "file:") {
		return nil, fmt.Errorf("pythonIndex %q: need an https or http PEP 503 index URL (the lock step runs in the builder container)", index)
	}
	pyVersion, err := BuildrootPythonVersion(b.brTree)
	if err != nil {
		return nil, err
	}
	pkgs, err := ExternalBuildrootPackages(o.External)
	if err != nil {
		return nil, err
	}
	reqs, err := b.readGitFile(ctx, "ipa", in.IPA, "requirements.txt", "is it an ironic-python-agent repository?")
	if err != nil {
		return nil, err
	}
	uc, err := b.readGitFile(ctx, "requirements", in.Requirements, "upper-constraints.txt", "use an openstack/requirements branch or tag that has one (master, stable/2026.1, ...)")
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(o.CacheDir, "lock-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	input, output := filepath.Join(scratch, "input"), filepath.Join(scratch, "output")
	for _, d := range []string{scratch, input, output} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o755); err != nil { // MkdirTemp: 0700; the container user reads it
			return nil, err
		}
	}
	b.ownForContainer(output)
	arches := map[string]map[string]string{}
	for _, a := range Arches {
		arches[a] = map[string]string{"machine": machines[a]}
	}
	request, _ := json.Marshal(map[string]any{
		"index":             index,
		"pythonVersion":     pyVersion,
		"arches":            arches,
		"buildrootPackages": pkgs,
		"exclude":           []string{"ironic-python-agent"},
		"cache":             ContainerDL + "/" + ipaDLSubdir,
	})
	for name, data := range map[string][]byte{
		"resolve.py": resolverScript, "request.json": request,
		"requirements.txt": reqs, "upper-constraints.txt": uc,
	} {
		if err := os.WriteFile(filepath.Join(input, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	network, err := b.fetchNetwork(ctx)
	if err != nil {
		return nil, err
	}
	if b.sink == nil {
		progress := newProgressLine(o.Progress)
		defer progress.done()
		b.sink = &logSink{log: o.Log, progress: progress}
	}
	mounts := []mount.Mount{
		bind(input, ContainerLockInput, true),
		bind(output, ContainerOutput, false),
		bind(o.DLDir, ContainerDL, false),
		bind(b.mirrorsDir(), ContainerDL+"/ipa-oci-git", true),
		bind(b.stampsDir(), ContainerDL+"/.ipa-oci-fetch", true),
	}
	script := "set -euo pipefail\npython3 " + ContainerLockInput + "/resolve.py " + ContainerLockInput + " " + ContainerOutput
	if err := b.phase(ctx, "lock", network, mounts, script); err != nil {
		return nil, err
	}
	res, err := readResolution(output)
	if err != nil {
		return nil, err
	}
	if res.Problem != nil {
		return nil, res.Problem.err(b, index, pyVersion)
	}
	py := &LockedPython{Index: index, Version: pyVersion, BuildrootPackages: pkgs, Wheels: mergeArches(res.Arches)}
	if py.BuildrootPackages == nil {
		py.BuildrootPackages = []string{}
	}
	for _, a := range Arches {
		b.log.WithFields(logrus.Fields{"arch": a, "wheels": len(res.Arches[a])}).Info("resolved the agent's wheel closure")
	}
	return py, nil
}

// readGitFile reads path at src's commit from the host-owned mirror (host git, hardened).
func (b *build) readGitFile(ctx context.Context, field string, src *ResolvedGit, path, hint string) ([]byte, error) {
	dir := filepath.Join(b.mirrorsDir(), mirrorName(src.Repo))
	out, err := b.git.run(ctx, dir, "cat-file", "blob", src.Commit+":"+path)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s (commit %s) has no %s: %s", field, src.Repo, src.Ref, src.Commit, path, hint)
	}
	return []byte(out + "\n"), nil
}

// resolution is the resolver's resolution.json.
type resolution struct {
	Arches  map[string][]resolvedWheel `json:"arches"`
	Problem *resolveProblem            `json:"problem"`
}

type resolvedWheel struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	URL     string `json:"url"`
	SHA256  string `json:"sha256"`
}

// resolveProblem is the first problem the resolver met.
type resolveProblem struct {
	Kind       string `json:"kind"`
	Arch       string `json:"arch"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	File       string `json:"file"`
	RequiredBy string `json:"requiredBy"`
	Detail     string `json:"detail"`
}

// readResolution reads OUTPUT/resolution.json (written by the container: through an os.Root,
// regular file only, size-limited, strict JSON).
func readResolution(dir string) (*resolution, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := openRegular(root, "resolution.json")
	if err != nil {
		return nil, fmt.Errorf("lock: the resolver wrote no result: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxResolution))
	dec.DisallowUnknownFields()
	var r resolution
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("lock: the resolver's result is not valid: %s", oneLine(err.Error()))
	}
	if r.Problem == nil {
		for _, a := range Arches {
			if _, ok := r.Arches[a]; !ok {
				return nil, fmt.Errorf("lock: the resolver's result lacks %s", a)
			}
		}
		if len(r.Arches) != len(Arches) {
			return nil, errors.New("lock: the resolver's result has unexpected architectures")
		}
	}
	return &r, nil
}

// mergeArches turns per-architecture closures into one sorted wheel list with each wheel's
// architectures. Validation (Lock.Validate) follows.
func mergeArches(per map[string][]resolvedWheel) []Wheel {
	byKey := map[resolvedWheel]*Wheel{}
	for _, a := range Arches {
		for _, rw := range per[a] {
			w := byKey[rw]
			if w == nil {
				w = &Wheel{Name: rw.Name, Version: rw.Version, URL: rw.URL, SHA256: rw.SHA256}
				byKey[rw] = w
			}
			w.Arches = append(w.Arches, a)
		}
	}
	out := make([]Wheel, 0, len(byKey))
	for _, w := range byKey {
		sort.Strings(w.Arches)
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return wheelLess(out[i], out[j]) })
	return out
}

// printable keeps a resolver-supplied string fit for a one-line message.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// err turns the resolver's problem into a one-line error naming the dependency and what to do.
func (p *resolveProblem) err(b *build, index, pyVersion string) error {
	name, version, file, by := printable(p.Name), printable(p.Version), printable(p.File), printable(p.RequiredBy)
	detail := printable(p.Detail)
	dep := name
	if version != "" {
		dep += " " + version
	}
	if by != "" {
		dep += " (required by " + by + ")"
	}
	arch := ""
	if p.Arch != "" {
		arch = " for " + printable(p.Arch)
	}
	switch p.Kind {
	case "no-pure-wheel":
		if !pyNameRE.MatchString(p.Name) {
			return fmt.Errorf("lock: python dependency %q has no pure-Python wheel", name)
		}
		have := "no wheel at all"
		if file != "" {
			have = "only " + file
		}
		pkg := "python-" + strings.TrimPrefix(p.Name, "python-")
		sym := "BR2_PACKAGE_" + strings.ToUpper(strings.ReplaceAll(pkg, "-", "_"))
		where := fmt.Sprintf("add %s to IRONIC_PYTHON_AGENT_DEPENDENCIES in %s and select %s in the package's Config.in", pkg, filepath.Join(b.o.External, IPAPackageMk), sym)
		if fi, err := os.Stat(filepath.Join(b.brTree, "package", pkg)); err != nil || !fi.IsDir() {
			where = fmt.Sprintf("Buildroot has no %s package: write one in the external tree (package/%s), then %s", pkg, pkg, where)
		}
		return fmt.Errorf("lock: python dependency %s%s has no pure-Python wheel on %s (%s) and no Buildroot package provides it: Buildroot's %s is needed: %s", dep, arch, index, have, pkg, where)
	case "not-found":
		return fmt.Errorf("lock: python dependency %s is not on the index %s: check pythonIndex in %s", dep, index, b.o.configName())
	case "pin-not-found":
		return fmt.Errorf("lock: python dependency %s (pinned by upper-constraints.txt) is not on the index %s: check pythonIndex in %s", dep, index, b.o.configName())
	case "no-version":
		return fmt.Errorf("lock: python dependency %s%s: %s", dep, arch, detail)
	case "conflict":
		return fmt.Errorf("lock: python dependency %s%s: %s", name, arch, detail)
	case "requires-python":
		return fmt.Errorf("lock: python dependency %s (%s) requires Python %s; the Buildroot tree's python3 is %s", dep, file, detail, pyVersion)
	case "index-hash":
		return fmt.Errorf("lock: %s from %s does not have the sha256 the index lists (%s): the index or a proxy serves changed bytes", file, index, detail)
	case "bad-requirement":
		return fmt.Errorf("lock: %s", detail)
	case "http":
		return fmt.Errorf("lock: python dependency %s: %s", dep, detail)
	}
	return fmt.Errorf("lock: python dependency %s%s: %s (%s)", dep, arch, printable(p.Kind), detail)
}

var (
	mkAssignRE = regexp.MustCompile(`^([A-Z0-9_]+)\s*(\+=|:=|\?=|=)\s*(.*)$`)
	mkVarRefRE = regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`)
)

// readMakeVars reads the simple assignments of a Buildroot makefile (continuation lines
// joined, comments dropped, += appended, $(VAR) references to earlier variables expanded).
func readMakeVars(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	var line string
	for sc.Scan() {
		l := sc.Text()
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if strings.HasSuffix(l, "\\") {
			line += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		line += l
		m := mkAssignRE.FindStringSubmatch(strings.TrimSpace(line))
		line = ""
		if m == nil {
			continue
		}
		v := mkVarRefRE.ReplaceAllStringFunc(strings.TrimSpace(m[3]), func(ref string) string {
			return vars[mkVarRefRE.FindStringSubmatch(ref)[1]]
		})
		if m[2] == "+=" && vars[m[1]] != "" {
			v = vars[m[1]] + " " + v
		}
		vars[m[1]] = v
	}
	return vars, sc.Err()
}

// BuildrootPythonVersion is the CPython version of a Buildroot tree's python3 package
// (package/python3/python3.mk), e.g. "3.12.13".
func BuildrootPythonVersion(tree string) (string, error) {
	p := filepath.Join(tree, "package", "python3", "python3.mk")
	vars, err := readMakeVars(p)
	if err != nil {
		return "", fmt.Errorf("the Python version of the Buildroot tree: %w", err)
	}
	v := vars["PYTHON3_VERSION"]
	if !pyTargetRE.MatchString(v) {
		return "", fmt.Errorf("the Python version of the Buildroot tree: PYTHON3_VERSION in %s is %q, not a CPython version", p, v)
	}
	return v, nil
}

// ExternalBuildrootPackages returns the sorted python-* Buildroot packages in
// IRONIC_PYTHON_AGENT_DEPENDENCIES of the external tree's ironic-python-agent package (none
// when the tree has no such package).
func ExternalBuildrootPackages(external string) ([]string, error) {
	p := filepath.Join(external, IPAPackageMk)
	vars, err := readMakeVars(p)
	if errors.Is(err, os.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	seen := map[string]bool{}
	out := []string{}
	for _, w := range strings.Fields(vars["IRONIC_PYTHON_AGENT_DEPENDENCIES"]) {
		if strings.HasPrefix(w, "python-") && !seen[w] {
			if !brPackageRE.MatchString(w) {
				return nil, fmt.Errorf("%s: IRONIC_PYTHON_AGENT_DEPENDENCIES: %q is not a Buildroot package name", p, w)
			}
			seen[w] = true
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out, nil
}

// WriteWheelList writes the files that hand arch's wheels to buildroot-external's
// ironic-python-agent package into dir: WheelsMkName, a makefile setting
// IRONIC_PYTHON_AGENT_WHEELS (one URL per wheel) and IRONIC_PYTHON_AGENT_WHEELS_HASH (the hash
// file's path as make sees it: containerDir/WheelsHashName), and WheelsHashName, that hash file
// in Buildroot's .hash format. Make gets the makefile as WheelsMkVar=containerDir/WheelsMkName.
// l must be valid (Validate), so every URL is made of characters make and a shell take literally.
func (l *Lock) WriteWheelList(dir, arch, containerDir string) error {
	if err := l.Validate(); err != nil {
		return err
	}
	ws := l.WheelsFor(arch)
	var mk, hash bytes.Buffer
	fmt.Fprintf(&mk, "# Generated by ipa-oci from %s for %s: the agent's pure-Python wheels. Do not edit.\n", LockFileName, arch)
	fmt.Fprintf(&hash, "# Generated by ipa-oci from %s for %s: sha256 of each wheel.\n", LockFileName, arch)
	mk.WriteString("IRONIC_PYTHON_AGENT_WHEELS =")
	for _, w := range ws {
		fmt.Fprintf(&mk, " \\\n\t%s", w.URL)
		fmt.Fprintf(&hash, "sha256  %s  %s\n", w.SHA256, w.File())
	}
	fmt.Fprintf(&mk, "\nIRONIC_PYTHON_AGENT_WHEELS_HASH = %s/%s\n", containerDir, WheelsHashName)
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, WheelsHashName), hash.Bytes()); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, WheelsMkName), mk.Bytes())
}
