package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ipa-oci/ipa-oci/internal/errkind"
	"github.com/ipa-oci/ipa-oci/internal/fsutil"
	"sigs.k8s.io/yaml"
)

// LockFileName is the lock file's name; it lives next to ipa-oci.yaml.
const LockFileName = "ipa-oci.lock"

// LockVersion is the version of the lock file format this ipa-oci reads and writes.
const LockVersion = 1

// DefaultPythonIndex is the PEP 503 index the wheels are resolved against when pythonIndex
// is not set.
const DefaultPythonIndex = "https://pypi.org/simple"

// Arches are the architectures a lock resolves the Python wheels for: every architecture
// ipa-oci builds, so one lock serves `build --arch amd64` and `build --arch arm64`.
var Arches = []string{"amd64", "arm64"}

// maxLockSize bounds what LoadLock and ParseLock read.
const maxLockSize = 8 << 20

// Lock is ipa-oci.lock: every input of a build that would otherwise float, resolved once by
// `ipa-oci lock` (ResolveLock) and then used as is by every build (Options.Lock) and recorded
// in build-info.json (BuildInfo.Lock), so a rebuild replays exactly the same inputs.
//
// The file is YAML written in a fixed order with every string quoted (Marshal), meant to be
// committed next to ipa-oci.yaml. ParseLock reads it strictly (unknown or duplicate fields are
// errors) and Validate checks every value: a lock may come from a container, a registry or a
// hand edit, and its URLs and file names end up in a makefile.
type Lock struct {
	// LockVersion is the file format version, LockVersion.
	LockVersion int `json:"lockVersion"`
	// Buildroot is the Buildroot release (URL and the tarball's sha256, verified against the
	// download when locking) or a local tree (its TreeHash).
	Buildroot LockedBuildroot `json:"buildroot"`
	// BuilderImage is the ID of the builder image that resolved the lock and that builds run in.
	BuilderImage string `json:"builderImage"`
	// IPA and Requirements are the git sources with their refs resolved to commits; nil when
	// the configuration names no such repository.
	IPA          *ResolvedGit `json:"ipa,omitempty"`
	Requirements *ResolvedGit `json:"requirements,omitempty"`
	// SourceDateEpoch is the configured value, or the IPA commit's committer time.
	SourceDateEpoch int64 `json:"sourceDateEpoch"`
	// Python is the agent's wheel closure; nil unless both IPA and requirements are set.
	Python *LockedPython `json:"python,omitempty"`
}

// LockedBuildroot is a Buildroot release (URL + SHA256 of the tarball) or, with TreeSHA256, a
// local tree (buildroot.src) identified by its TreeHash.
type LockedBuildroot struct {
	Version    string `json:"version,omitempty"`
	URL        string `json:"url,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	TreeSHA256 string `json:"treeSha256,omitempty"`
}

// LockedPython is the resolved Python side of the agent.
type LockedPython struct {
	// Index is the PEP 503 index the closure was resolved against (pythonIndex).
	Index string `json:"index"`
	// Version is the target CPython version, read from the Buildroot tree's python3 package.
	Version string `json:"version"`
	// BuildrootPackages are the python-* Buildroot packages the external tree builds the agent
	// with (IRONIC_PYTHON_AGENT_DEPENDENCIES): those distributions, and what they depend on,
	// come from Buildroot and are not in Wheels.
	BuildrootPackages []string `json:"buildrootPackages"`
	// Wheels is the closure: one pure-Python wheel per distribution and architecture, sorted
	// by name, version and URL.
	Wheels []Wheel `json:"wheels"`
}

// Wheel is one pinned wheel.
type Wheel struct {
	Name    string   `json:"name"`    // PEP 503 normalised distribution name
	Version string   `json:"version"` // as in the file name
	URL     string   `json:"url"`     // https, http or file; its last path segment is File()
	SHA256  string   `json:"sha256"`  // of the file, 64 lower-case hex digits
	Arches  []string `json:"arches"`  // the architectures whose closure holds it, sorted
}

// File is the wheel's file name: the last path segment of its URL.
func (w Wheel) File() string {
	u, err := url.Parse(w.URL)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

// WheelsFor returns the wheels of arch's closure, sorted by name.
func (l *Lock) WheelsFor(arch string) []Wheel {
	if l.Python == nil {
		return nil
	}
	var out []Wheel
	for _, w := range l.Python.Wheels {
		for _, a := range w.Arches {
			if a == arch {
				out = append(out, w)
			}
		}
	}
	return out
}

// LockPath is where the lock of the configuration file cfg lives: next to it, or
// ./ipa-oci.lock when there is no configuration file.
func LockPath(cfg string) string {
	if cfg == "" {
		return LockFileName
	}
	return filepath.Join(filepath.Dir(cfg), LockFileName)
}

// LoadLock reads and validates the lock file at p.
func LoadLock(p string) (*Lock, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read lock file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		return nil, fmt.Errorf("read lock file %s: %w", p, err)
	}
	l, err := ParseLock(b)
	if err != nil {
		return nil, errkind.Mark(ErrRelock, "lock file %s: %w; fix it, or lock anew", p, err)
	}
	return l, nil
}

// ParseLock parses a lock (YAML, or JSON, which is YAML too) strictly and validates it.
func ParseLock(b []byte) (*Lock, error) {
	if len(b) > maxLockSize {
		return nil, fmt.Errorf("larger than %d bytes", maxLockSize)
	}
	var l Lock
	if err := yaml.UnmarshalStrict(b, &l); err != nil {
		return nil, fmt.Errorf("not a valid lock (%s)", strings.TrimPrefix(oneLine(err.Error()), "error converting YAML to JSON: "))
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

// WriteLock validates l and writes it to p (Marshal's bytes) atomically: never half-written
// under p's name.
func WriteLock(p string, l *Lock) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("write lock file %s: %w", p, err)
	}
	if err := fsutil.WriteFileAtomic(p, l.Marshal()); err != nil {
		return fmt.Errorf("write lock file %s: %w", p, err)
	}
	return nil
}

// Validation of untrusted lock content.
var (
	sha256RE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	imageIDRE     = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	pyNameRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`) // PEP 503 normalised
	pyVersionRE   = regexp.MustCompile(`^[0-9][0-9A-Za-z.+!_]*$`)         // PEP 440 characters
	pyTargetRE    = regexp.MustCompile(`^3\.[0-9]+(\.[0-9]+)?$`)          // CPython version
	brPackageRE   = regexp.MustCompile(`^python-[a-z0-9][a-z0-9-]*$`)     // Buildroot package name
	urlCharsRE    = regexp.MustCompile(`^[A-Za-z0-9._~:/+%@,-]+$`)        // nothing make or a shell would act on
	wheelFileRE   = regexp.MustCompile(`^([A-Za-z0-9_.]+)-([0-9][A-Za-z0-9_.+!]*)(-[0-9][A-Za-z0-9_]*)?-([A-Za-z0-9_.]+)-([A-Za-z0-9_.]+)-([A-Za-z0-9_.]+)\.whl$`)
	refCharsRE    = regexp.MustCompile(`^[A-Za-z0-9._/@^~+-]+$`) // git ref names as used here
	versionTextRE = regexp.MustCompile(`^[A-Za-z0-9._+-]*$`)     // Buildroot version label
)

// Validate checks every field of l: format version, hex digests, URL schemes and characters,
// names and versions, wheel file names (pure-Python, no path separators, matching name and
// version), and that no wheel file name is pinned twice.
func (l *Lock) Validate() error {
	if l.LockVersion != LockVersion {
		return fmt.Errorf("lockVersion %d: this ipa-oci reads lock files of version %d", l.LockVersion, LockVersion)
	}
	br := l.Buildroot
	switch {
	case br.TreeSHA256 != "":
		if !sha256RE.MatchString(br.TreeSHA256) || br.URL != "" || br.SHA256 != "" {
			return errors.New("buildroot: treeSha256 (a local tree) must be 64 hex digits and comes without url and sha256")
		}
	default:
		if err := checkURL("buildroot.url", br.URL); err != nil {
			return err
		}
		if !sha256RE.MatchString(br.SHA256) {
			return fmt.Errorf("buildroot.sha256 %q: need 64 lower-case hex digits", br.SHA256)
		}
	}
	if !versionTextRE.MatchString(br.Version) {
		return fmt.Errorf("buildroot.version %q: letters, digits and ._+- only", br.Version)
	}
	if !imageIDRE.MatchString(l.BuilderImage) {
		return fmt.Errorf("builderImage %q: need an image ID sha256:<64 hex digits>", l.BuilderImage)
	}
	for _, g := range []struct {
		field string
		src   *ResolvedGit
	}{{"ipa", l.IPA}, {"requirements", l.Requirements}} {
		if g.src == nil {
			continue
		}
		if err := checkRepoURL(g.field+".repo", g.src.Repo); err != nil {
			return err
		}
		if !refCharsRE.MatchString(g.src.Ref) || strings.HasPrefix(g.src.Ref, "-") {
			return fmt.Errorf("%s.ref %q: not a branch, tag or commit name", g.field, g.src.Ref)
		}
		if !commitRE.MatchString(g.src.Commit) {
			return fmt.Errorf("%s.commit %q: need a 40-hex commit ID", g.field, g.src.Commit)
		}
	}
	if l.SourceDateEpoch <= 0 {
		return fmt.Errorf("sourceDateEpoch %d: must be a positive Unix time", l.SourceDateEpoch)
	}
	if l.Python == nil {
		return nil
	}
	if l.IPA == nil || l.Requirements == nil {
		return errors.New("python: a wheel closure needs both ipa and requirements")
	}
	py := l.Python
	if err := checkURL("python.index", py.Index); err != nil {
		return err
	}
	if !pyTargetRE.MatchString(py.Version) {
		return fmt.Errorf("python.version %q: need a CPython version such as 3.12", py.Version)
	}
	if !sort.StringsAreSorted(py.BuildrootPackages) {
		return errors.New("python.buildrootPackages: not sorted")
	}
	for i, p := range py.BuildrootPackages {
		if !brPackageRE.MatchString(p) || (i > 0 && py.BuildrootPackages[i-1] == p) {
			return fmt.Errorf("python.buildrootPackages[%d] %q: need distinct python-* Buildroot package names", i, p)
		}
	}
	files := map[string]Wheel{}
	perArch := map[string]bool{}
	for i, w := range py.Wheels {
		field := fmt.Sprintf("python.wheels[%d]", i)
		if err := w.validate(); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if i > 0 && !wheelLess(py.Wheels[i-1], w) {
			return fmt.Errorf("%s (%s %s): wheels not sorted by name, version and URL, or listed twice", field, w.Name, w.Version)
		}
		if prev, dup := files[w.File()]; dup && (prev.SHA256 != w.SHA256 || prev.URL != w.URL) {
			return fmt.Errorf("%s: file %s is pinned twice with different URLs or sha256", field, w.File())
		}
		files[w.File()] = w
		for _, a := range w.Arches {
			if perArch[a+" "+w.Name] {
				return fmt.Errorf("%s: %s is pinned twice for %s", field, w.Name, a)
			}
			perArch[a+" "+w.Name] = true
		}
	}
	return nil
}

func wheelLess(a, b Wheel) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	if a.Version != b.Version {
		return a.Version < b.Version
	}
	return a.URL < b.URL
}

func (w Wheel) validate() error {
	if !pyNameRE.MatchString(w.Name) {
		return fmt.Errorf("name %q: need a PEP 503 normalised name (lower case, digits, -)", w.Name)
	}
	if !pyVersionRE.MatchString(w.Version) {
		return fmt.Errorf("%s: version %q: not a PEP 440 version", w.Name, w.Version)
	}
	if err := checkURL(w.Name+" url", w.URL); err != nil {
		return err
	}
	// Buildroot's dl-wrapper takes what precedes a "+" in the download directory for a method.
	if dir, _ := path.Split(w.URL); strings.Contains(dir, "+") {
		return fmt.Errorf("%s url %q: Buildroot cannot download from a directory with \"+\" in its URL", w.Name, w.URL)
	}
	if !sha256RE.MatchString(w.SHA256) {
		return fmt.Errorf("%s: sha256 %q: need 64 lower-case hex digits", w.Name, w.SHA256)
	}
	file := w.File()
	m := wheelFileRE.FindStringSubmatch(file)
	if m == nil {
		return fmt.Errorf("%s: %q is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl, no path separators)", w.Name, file)
	}
	if pyNormalize(m[1]) != w.Name || !strings.EqualFold(m[2], w.Version) {
		return fmt.Errorf("%s: file %s is not %s %s", w.Name, file, w.Name, w.Version)
	}
	if m[5] != "none" || m[6] != "any" {
		return fmt.Errorf("%s: %s is not a pure-Python wheel (ABI %s, platform %s)", w.Name, file, m[5], m[6])
	}
	if len(w.Arches) == 0 || !sort.StringsAreSorted(w.Arches) {
		return fmt.Errorf("%s: arches %v: need a sorted, non-empty list", w.Name, w.Arches)
	}
	for i, a := range w.Arches {
		if !isArch(a) || (i > 0 && w.Arches[i-1] == a) {
			return fmt.Errorf("%s: arches %v: use amd64 and arm64, once each", w.Name, w.Arches)
		}
	}
	return nil
}

func isArch(a string) bool {
	for _, x := range Arches {
		if a == x {
			return true
		}
	}
	return false
}

var pyNameSepRE = regexp.MustCompile(`[-_.]+`)

// pyNormalize is PEP 503's normalised form of a distribution name.
func pyNormalize(name string) string { return strings.ToLower(pyNameSepRE.ReplaceAllString(name, "-")) }

// checkURL accepts absolute https, http and file URLs made of characters that neither make
// nor a shell would act on (Buildroot passes download URLs to the shell unquoted), with no
// query, fragment, user info or "..".
func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || raw == "":
		return fmt.Errorf("%s %q: not a URL", field, raw)
	case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file":
		return fmt.Errorf("%s %q: only https, http and file URLs", field, raw)
	case !urlCharsRE.MatchString(raw) || u.Fragment != "" || u.User != nil || strings.Contains(u.Path, ".."):
		return fmt.Errorf("%s %q: unexpected characters (letters, digits and ._~:/+%%@,- only: no spaces, quotes, $, #, ?, &, user info or ..)", field, raw)
	case u.Scheme != "file" && u.Host == "":
		return fmt.Errorf("%s %q: no host", field, raw)
	}
	return nil
}

// checkRepoURL accepts what the git sources accept: the URL forms of checkURL plus ssh:// and
// git://, and scp-like user@host:path.
func checkRepoURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme == "ssh" || u.Scheme == "git") && u.Host != "" && urlCharsRE.MatchString(raw) {
		return nil
	}
	if err == nil && u.Scheme == "" && urlCharsRE.MatchString(raw) && !strings.HasPrefix(raw, "-") &&
		(strings.Contains(raw, ":") || strings.HasPrefix(raw, "/")) && !strings.Contains(raw, "..") {
		return nil // user@host:path, or a local path
	}
	return checkURL(field, raw)
}

// oneLine joins a multi-line message into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Marshal is the lock's canonical file content: a comment header, then YAML in a fixed field
// order with every string double-quoted (JSON string syntax, which YAML reads as is), so the
// same lock always gives the same bytes and a diff shows what moved.
func (l *Lock) Marshal() []byte {
	var b bytes.Buffer
	q := func(s string) string { j, _ := json.Marshal(s); return string(j) }
	b.WriteString(`# ipa-oci.lock: every floating input of the build in ipa-oci.yaml, resolved by ` + "`ipa-oci lock`" + `.
# Commit it. ` + "`ipa-oci build`" + ` builds exactly this and refuses when ipa-oci.yaml no longer matches;
# ` + "`ipa-oci lock --update`" + ` (or ` + "`build --update-lock`" + `) resolves everything anew. Do not edit by hand.
`)
	fmt.Fprintf(&b, "lockVersion: %d\n", l.LockVersion)
	b.WriteString("buildroot:\n")
	for _, kv := range [][2]string{{"version", l.Buildroot.Version}, {"url", l.Buildroot.URL}, {"sha256", l.Buildroot.SHA256}, {"treeSha256", l.Buildroot.TreeSHA256}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "  %s: %s\n", kv[0], q(kv[1]))
		}
	}
	fmt.Fprintf(&b, "builderImage: %s\n", q(l.BuilderImage))
	for _, g := range []struct {
		key string
		src *ResolvedGit
	}{{"ipa", l.IPA}, {"requirements", l.Requirements}} {
		if g.src == nil {
			continue
		}
		fmt.Fprintf(&b, "%s:\n  repo: %s\n  ref: %s\n  commit: %s\n  commitTime: %d\n", g.key, q(g.src.Repo), q(g.src.Ref), q(g.src.Commit), g.src.CommitTime)
	}
	fmt.Fprintf(&b, "sourceDateEpoch: %d\n", l.SourceDateEpoch)
	if py := l.Python; py != nil {
		fmt.Fprintf(&b, "python:\n  index: %s\n  version: %s\n", q(py.Index), q(py.Version))
		b.WriteString("  buildrootPackages:")
		if len(py.BuildrootPackages) == 0 {
			b.WriteString(" []")
		}
		b.WriteString("\n")
		for _, p := range py.BuildrootPackages {
			fmt.Fprintf(&b, "  - %s\n", q(p))
		}
		b.WriteString("  wheels:")
		if len(py.Wheels) == 0 {
			b.WriteString(" []")
		}
		b.WriteString("\n")
		for _, w := range py.Wheels {
			arches := make([]string, len(w.Arches))
			for i, a := range w.Arches {
				arches[i] = q(a)
			}
			fmt.Fprintf(&b, "  - name: %s\n    version: %s\n    url: %s\n    sha256: %s\n    arches: [%s]\n",
				q(w.Name), q(w.Version), q(w.URL), q(w.SHA256), strings.Join(arches, ", "))
		}
	}
	return b.Bytes()
}

// LockMismatchError says which configuration field a lock no longer matches.
type LockMismatchError struct {
	Field  string // e.g. "requirements.ref"
	Config string // the value in the configuration (ipa-oci.yaml and flags)
	Locked string // the value in the lock
	// ConfigFile and LockFile name the files compared (default ipa-oci.yaml, ipa-oci.lock).
	ConfigFile, LockFile string
}

func (e *LockMismatchError) Error() string {
	return fmt.Sprintf("%s does not match the configuration: %s is %s in %s (or its flag) but %s in the lock; run `ipa-oci lock` to resolve it anew",
		orDefault(e.LockFile, LockFileName), e.Field, orEmpty(e.Config), orDefault(e.ConfigFile, ConfigFileName), orEmpty(e.Locked))
}

// Is makes a *LockMismatchError match ErrLockMismatch.
func (e *LockMismatchError) Is(target error) bool { return target == ErrLockMismatch }

func orEmpty(s string) string {
	if s == "" {
		return "(not set)"
	}
	return strconv.Quote(s)
}
