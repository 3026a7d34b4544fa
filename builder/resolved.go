package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/mount"
)

// Resolved is the configuration a build would use (`ipa-oci config`, like `kas dump`):
// ipa-oci.yaml, the flags and the defaults merged, the lock's pins applied when the lock
// matches, and what the builder containers get (mounts, network, environment, the make
// command line). Field order is the output's order.
type Resolved struct {
	ConfigFile      string            `json:"configFile"`
	LockFile        string            `json:"lockFile"`
	Lock            ResolvedLock      `json:"lock"`
	Buildroot       ResolvedBuildroot `json:"buildroot"`
	External        string            `json:"external"`
	KernelConfig    string            `json:"kernelConfig,omitempty"`
	Defconfig       string            `json:"defconfig"`
	Arch            string            `json:"arch"`
	IPA             *ResolvedSource   `json:"ipa,omitempty"`
	Requirements    *ResolvedSource   `json:"requirements,omitempty"`
	BuilderImage    ResolvedImage     `json:"builderImage"`
	SourceDateEpoch int64             `json:"sourceDateEpoch"`
	PythonIndex     string            `json:"pythonIndex,omitempty"`
	Wheels          map[string]int    `json:"wheels,omitempty"` // per architecture, from the lock
	Jobs            int               `json:"jobs"`
	Output          string            `json:"output"`
	BuildrootOutput string            `json:"buildrootOutput"` // OUTPUT/buildroot, Buildroot's O=
	DLDir           string            `json:"dlDir"`
	CcacheDir       string            `json:"ccacheDir"`
	CacheDir        string            `json:"cacheDir"`
	HostNetwork     bool              `json:"hostNetwork"`
	Offline         bool              `json:"offline"`
	User            string            `json:"user"`
	MakeArgs        []string          `json:"makeArgs,omitempty"`
	Env             []string          `json:"env,omitempty"`
	Make            string            `json:"make"` // how every make call in a container starts
	Containers      []ResolvedPhase   `json:"containers"`
	Notes           []string          `json:"notes,omitempty"`
}

// ResolvedLock says whether the lock file exists and matches the configuration.
type ResolvedLock struct {
	Status string `json:"status"` // "matches", "missing", "does not match", "invalid"
	Detail string `json:"detail,omitempty"`
}

// ResolvedBuildroot is the Buildroot release or local tree.
type ResolvedBuildroot struct {
	Version string `json:"version,omitempty"`
	URL     string `json:"url,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Src     string `json:"src,omitempty"`
	Tree    string `json:"tree"` // where the tree is on the host (mounted at ContainerBuildroot)
}

// ResolvedSource is a git input: the ref, and the commit when the lock pins it.
type ResolvedSource struct {
	Repo       string `json:"repo"`
	Ref        string `json:"ref"`
	Commit     string `json:"commit,omitempty"`
	CommitTime int64  `json:"commitTime,omitempty"`
}

// ResolvedImage is the builder image: the configured reference and pin, and what would run.
type ResolvedImage struct {
	Image  string `json:"image,omitempty"`
	Pin    string `json:"pin,omitempty"`    // builder.id
	Locked string `json:"locked,omitempty"` // the lock's image ID
	Runs   string `json:"runs"`             // the image a build would run
}

// ResolvedPhase is one kind of builder container: its network, mounts and environment.
type ResolvedPhase struct {
	Phase   string   `json:"phase"`
	Network string   `json:"network"`
	Mounts  []string `json:"mounts"` // "HOST:CONTAINER:ro|rw"
	Env     []string `json:"env"`    // host-passed values are not shown
}

// Resolve returns what a build with o (ipa-oci.yaml merged with the flags) would use, with the
// lock at lockPath applied when it matches. It runs nothing and talks to no engine: commits,
// SOURCE_DATE_EPOCH and the builder image ID come from the lock; without a matching lock they
// are left out and Lock says why.
func Resolve(o Options, lockPath string) (*Resolved, error) {
	if err := o.normalize(false); err != nil {
		return nil, err
	}
	if o.LockFile == "" {
		o.LockFile = lockPath
	}
	r := &Resolved{ConfigFile: orDefault(o.ConfigFile, "(none: flags and defaults)"), LockFile: lockPath}
	lock, err := LoadLock(lockPath)
	var me *LockMismatchError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Lock = ResolvedLock{Status: "missing", Detail: "`ipa-oci build` would run `ipa-oci lock` first"}
		lock = nil
	case err != nil:
		r.Lock = ResolvedLock{Status: "invalid", Detail: err.Error()}
		lock = nil
	default:
		cerr := lock.Check(o)
		switch {
		case cerr == nil:
			r.Lock = ResolvedLock{Status: "matches"}
		case errors.As(cerr, &me):
			r.Lock = ResolvedLock{Status: "does not match", Detail: cerr.Error()}
			lock = nil
		default:
			return nil, cerr
		}
	}
	cfgBuilder := ResolvedImage{Image: o.BuilderImage, Pin: o.BuilderPin}
	if lock != nil {
		o.Lock = lock
		if err := applyLock(&o); err != nil {
			return nil, err
		}
		cfgBuilder.Locked = lock.BuilderImage
	}
	cfgBuilder.Runs = orDefault(o.BuilderImage, o.BuilderPin)
	r.BuilderImage = cfgBuilder

	if o.Output == "" {
		r.Notes = append(r.Notes, "output: not set (a build needs one); <output> stands for it below")
		o.Output = "<output>"
	}
	b := &build{o: o}
	uid, gid, _, err := containerUser(o.User)
	if err != nil {
		return nil, err
	}
	b.uid, b.gid = uid, gid
	in := &b.info.Inputs
	in.Arch, in.Defconfig = o.Arch, o.Defconfig
	in.SourceDateEpoch = o.SourceDateEpoch
	in.BuilderImage = ImageInput{Ref: cfgBuilder.Runs}
	br := o.Buildroot
	r.Buildroot = ResolvedBuildroot{Version: br.Version, URL: br.URL, SHA256: br.SHA256, Src: br.Src, Tree: br.Src}
	if br.Src == "" && br.SHA256 != "" {
		r.Buildroot.Tree = filepath.Join(o.CacheDir, "buildroot", strings.ToLower(strings.TrimPrefix(br.SHA256, "sha256:")), "tree")
	}
	b.brTree = r.Buildroot.Tree
	if o.KernelConfig != "" {
		in.KernelConfig = &TreeInput{}
	}
	for _, g := range []struct {
		src  GitSource
		dst  **ResolvedSource
		in   **ResolvedGit
		lock *ResolvedGit
	}{{o.IPA, &r.IPA, &in.IPA, lockGit(lock, true)}, {o.Requirements, &r.Requirements, &in.Requirements, lockGit(lock, false)}} {
		if g.src.Repo == "" {
			continue
		}
		rs := &ResolvedSource{Repo: g.src.Repo, Ref: orDefault(g.src.Ref, "HEAD"), Commit: g.src.Commit}
		if g.lock != nil {
			rs.CommitTime = g.lock.CommitTime
		}
		*g.dst = rs
		*g.in = &ResolvedGit{Repo: rs.Repo, Ref: rs.Ref, Commit: orDefault(rs.Commit, "<commit>")}
	}
	if lock != nil && lock.Python != nil {
		r.PythonIndex = lock.Python.Index
		r.Wheels = map[string]int{}
		for _, a := range Arches {
			r.Wheels[a] = len(lock.WheelsFor(a))
		}
		b.lockDir = filepath.Join(o.Output, lockDirName)
	} else if o.IPA.Repo != "" && o.Requirements.Repo != "" {
		r.PythonIndex = orDefault(o.PythonIndex, DefaultPythonIndex)
	}
	r.SourceDateEpoch = o.SourceDateEpoch
	if r.SourceDateEpoch == 0 {
		r.Notes = append(r.Notes, "sourceDateEpoch: the IPA commit's committer time, resolved by `ipa-oci lock`")
	}
	if lock == nil && (o.IPA.Repo != "" || o.Requirements.Repo != "") {
		r.Notes = append(r.Notes, "git commits: resolved by `ipa-oci lock` (shown as <commit> in the make command)")
	}
	r.External, r.KernelConfig, r.Defconfig, r.Arch = o.External, o.KernelConfig, o.Defconfig, o.Arch
	r.Jobs, r.Output, r.BuildrootOutput = o.Jobs, o.Output, b.brOut()
	r.DLDir, r.CcacheDir, r.CacheDir = o.DLDir, o.CcacheDir, o.CacheDir
	r.HostNetwork, r.Offline = o.HostNetwork, o.Offline
	r.User = fmt.Sprintf("%d:%d", uid, gid)
	r.MakeArgs, r.Env = o.MakeArgs, o.Env
	r.Make = b.makeCmd()

	fetchNet := "default (the engine's bridge network)"
	if o.HostNetwork {
		fetchNet = networkHost
	}
	for _, p := range []struct {
		phase, network string
		mounts         []mount.Mount
	}{
		{"fetch", fetchNet, b.fetchMounts(filepath.Join(o.Output, scratchDirName))},
		{"build", networkNone, b.buildMounts()},
	} {
		rp := ResolvedPhase{Phase: p.phase, Network: p.network}
		for _, m := range p.mounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			rp.Mounts = append(rp.Mounts, m.Source+":"+m.Target+":"+mode)
		}
		rp.Env = b.maskedEnv(p.phase)
		r.Containers = append(r.Containers, rp)
	}
	return r, nil
}

func lockGit(l *Lock, ipa bool) *ResolvedGit {
	switch {
	case l == nil:
		return nil
	case ipa:
		return l.IPA
	}
	return l.Requirements
}

// maskedEnv is env(phase) with the values taken from the host (proxies, --env) replaced:
// they may hold credentials.
func (b *build) maskedEnv(phase string) []string {
	fromHost := map[string]bool{}
	for _, p := range proxyVars {
		fromHost[p], fromHost[strings.ToUpper(p)] = true, true
	}
	for _, n := range b.o.Env {
		fromHost[n] = true
	}
	var out []string
	for _, kv := range b.env(phase) {
		k, _, _ := strings.Cut(kv, "=")
		if fromHost[k] {
			kv = k + "=(from the host environment)"
		}
		out = append(out, kv)
	}
	return out
}
