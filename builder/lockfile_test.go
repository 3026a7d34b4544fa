package builder

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/lockfixture"
)

// sampleLock is a valid lock with a wheel closure.
func sampleLock() *Lock {
	return &Lock{
		LockVersion:     LockVersion,
		Buildroot:       LockedBuildroot{Version: "2025.02.16", URL: "https://buildroot.org/downloads/buildroot-2025.02.16.tar.xz", SHA256: strings.Repeat("ab", 32)},
		BuilderImage:    "sha256:" + strings.Repeat("1", 64),
		IPA:             &ResolvedGit{Repo: "https://opendev.org/openstack/ironic-python-agent.git", Ref: "12.0.0", Commit: strings.Repeat("a", 40), CommitTime: 1700000000},
		Requirements:    &ResolvedGit{Repo: "https://opendev.org/openstack/requirements.git", Ref: "stable/2026.1", Commit: strings.Repeat("b", 40), CommitTime: 1700000100},
		SourceDateEpoch: 1700000000,
		Python: &LockedPython{Index: "https://pypi.org/simple", Version: "3.12.13", BuildrootPackages: []string{"python-cffi", "python-pyyaml"},
			Wheels: []Wheel{
				{Name: "oslo-config", Version: "9.7.1", URL: "https://files.example/oslo.config-9.7.1-py3-none-any.whl", SHA256: strings.Repeat("c", 64), Arches: []string{"amd64", "arm64"}},
				{Name: "pbr", Version: "6.1.1", URL: "https://files.example/pbr-6.1.1-py2.py3-none-any.whl", SHA256: strings.Repeat("d", 64), Arches: []string{"amd64", "arm64"}},
			}},
	}
}

// TestLockFileRoundTrip: Marshal's bytes parse back to the same lock, JSON is accepted as
// well (YAML's superset), and WriteLock writes exactly Marshal's bytes.
func TestLockFileRoundTrip(t *testing.T) {
	l := sampleLock()
	got, err := ParseLock(l.Marshal())
	if err != nil {
		t.Fatalf("%v\n%s", err, l.Marshal())
	}
	if !reflect.DeepEqual(got, l) {
		t.Errorf("round trip changed the lock:\n%+v\n%+v", got, l)
	}
	if !strings.Contains(string(l.Marshal()), "  - name: \"oslo-config\"\n    version: \"9.7.1\"\n") {
		t.Errorf("unexpected layout:\n%s", l.Marshal())
	}
	j := `{"lockVersion":1,"buildroot":{"treeSha256":"` + strings.Repeat("e", 64) + `"},"builderImage":"sha256:` + strings.Repeat("1", 64) + `","sourceDateEpoch":1}`
	if _, err := ParseLock([]byte(j)); err != nil {
		t.Errorf("a JSON lock: %v", err)
	}
	p := filepath.Join(t.TempDir(), LockFileName)
	if err := WriteLock(p, l); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(l.Marshal()) {
		t.Error("WriteLock did not write Marshal's bytes")
	}
}

// TestParseLockRejects: a lock edited by hand into something invalid is refused with one line
// naming what is wrong, whether it no longer parses or a value fails validation.
func TestParseLockRejects(t *testing.T) {
	good := string(sampleLock().Marshal())
	cases := []struct {
		name, old, new, want string
	}{
		{"invalid YAML", `lockVersion: 1`, "lockVersion: [1", "not a valid lock (yaml"},
		{"invalid JSON", good, `{"lockVersion": 1, "buildroot": {`, "not a valid lock"},
		{"unknown field", `sourceDateEpoch:`, "extra: 1\nsourceDateEpoch:", `unknown field "extra"`},
		{"duplicate field", `sourceDateEpoch:`, "lockVersion: 1\nsourceDateEpoch:", "already set in map"},
		{"wrong type", `sourceDateEpoch: 1700000000`, `sourceDateEpoch: "soon"`, "not a valid lock"},
		{"format version", `lockVersion: 1`, "lockVersion: 2", "lockVersion 2: this ipa-oci reads lock files of version 1"},
		{"sha256 not hex", strings.Repeat("c", 64), strings.Repeat("g", 64), `oslo-config: sha256 "` + strings.Repeat("g", 64)},
		{"sha256 short", strings.Repeat("c", 64), "cccc", `oslo-config: sha256 "cccc": need 64 lower-case hex digits`},
		{"ftp URL", "https://files.example/oslo", "ftp://files.example/oslo", "only https, http and file URLs"},
		{"URL with a space", "https://files.example/oslo", "https://files.example/ oslo", "unexpected characters"},
		{"URL with make syntax", "https://files.example/oslo", "https://files.example/$(shell id)/oslo", "unexpected characters"},
		{"URL with a query", "oslo.config-9.7.1-py3-none-any.whl", "oslo.config-9.7.1-py3-none-any.whl?x=1&y=2", "unexpected characters"},
		{"+ in the directory", "https://files.example/oslo", "https://files.example/a+b/oslo", "Buildroot cannot download from a directory with"},
		{"path in the file name", "oslo.config-9.7.1-py3-none-any.whl", "..%2Foslo.config-9.7.1-py3-none-any.whl", "unexpected characters"},
		{"not a wheel", "oslo.config-9.7.1-py3-none-any.whl", "oslo.config-9.7.1.tar.gz", "is not a wheel file name"},
		{"platform wheel", "oslo.config-9.7.1-py3-none-any.whl", "oslo.config-9.7.1-cp312-cp312-manylinux_2_28_x86_64.whl", "is not a pure-Python wheel"},
		{"file of another version", "oslo.config-9.7.1-py3", "oslo.config-9.7.2-py3", "is not oslo-config 9.7.1"},
		{"name not normalised", `name: "oslo-config"`, `name: "oslo.config"`, "need a PEP 503 normalised name"},
		{"unknown arch", `arches: ["amd64", "arm64"]`, `arches: ["amd64", "s390x"]`, "use amd64 and arm64"},
		{"commit not hex", strings.Repeat("a", 40), "main", `ipa.commit "main": need a 40-hex commit ID`},
		{"image not an ID", "sha256:" + strings.Repeat("1", 64), "ipa-oci/builder:latest", "builderImage"},
		{"buildroot file URL with ..", "https://buildroot.org/downloads/", "file:///tmp/../etc/", "unexpected characters"},
		{"ref option", `ref: "12.0.0"`, `ref: "--upload-pack=x"`, "not a branch, tag or commit name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Replace(good, c.old, c.new, 1)
			if text == good {
				t.Fatalf("the edit %q changed nothing", c.old)
			}
			_, err := ParseLock([]byte(text))
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line containing %q", err, c.want)
			}
		})
	}
	unsorted := sampleLock()
	w := unsorted.Python.Wheels
	w[0], w[1] = w[1], w[0]
	if _, err := ParseLock(unsorted.Marshal()); err == nil || !strings.Contains(err.Error(), "python.wheels[1] (oslo-config 9.7.1): wheels not sorted") {
		t.Errorf("unsorted wheels: %v", err)
	}
	// LoadLock names the file and what to do.
	p := filepath.Join(t.TempDir(), LockFileName)
	os.WriteFile(p, []byte("lockVersion: [1\n"), 0o644)
	if _, err := LoadLock(p); err == nil || !strings.HasPrefix(err.Error(), "lock file "+p+": not a valid lock") || !strings.Contains(err.Error(), "fix it, or lock anew") || !errors.Is(err, ErrRelock) {
		t.Errorf("LoadLock of invalid YAML: %v", err)
	}
}

// TestLockCheckNamesField: each configuration field a lock pins, changed, is named.
func TestLockCheckNamesField(t *testing.T) {
	ext := t.TempDir()
	lockfixture.WritePackageMk(t, ext)
	l := sampleLock()
	l.Python.BuildrootPackages = []string{"python-cbits"}
	base := Options{
		External:     ext,
		Buildroot:    BuildrootConfig{Version: "2025.02.16", URL: l.Buildroot.URL, SHA256: "sha256:" + strings.ToUpper(l.Buildroot.SHA256)},
		IPA:          GitSource{Repo: l.IPA.Repo, Ref: l.IPA.Ref},
		Requirements: GitSource{Repo: l.Requirements.Repo, Ref: l.Requirements.Ref},
		BuilderPin:   l.BuilderImage,
	}
	if err := l.Check(base); err != nil {
		t.Fatalf("matching configuration: %v", err)
	}
	other := t.TempDir() // an external tree without python-cbits
	cases := []struct {
		field string
		edit  func(o *Options)
	}{
		{"buildroot.url", func(o *Options) { o.Buildroot.URL = "https://mirror.example/br.tar.xz" }},
		{"buildroot.sha256", func(o *Options) { o.Buildroot.SHA256 = strings.Repeat("0", 64) }},
		{"buildroot.version", func(o *Options) { o.Buildroot.Version = "2025.02.17" }},
		{"buildroot.src", func(o *Options) { o.Buildroot = BuildrootConfig{Src: ext, Version: "2025.02.16"} }},
		{"ipa.repo", func(o *Options) { o.IPA.Repo = "https://example.org/ipa.git" }},
		{"ipa.ref", func(o *Options) { o.IPA.Ref = "master" }},
		{"ipa.commit", func(o *Options) { o.IPA.Commit = strings.Repeat("f", 40) }},
		{"requirements.ref", func(o *Options) { o.Requirements.Ref = "stable/2026.2" }},
		{"builder.id", func(o *Options) { o.BuilderPin = "sha256:" + strings.Repeat("2", 64) }},
		{"sourceDateEpoch", func(o *Options) { o.SourceDateEpoch = 5 }},
		{"pythonIndex", func(o *Options) { o.PythonIndex = "https://mirror.example/simple" }},
		{"IRONIC_PYTHON_AGENT_DEPENDENCIES (python-* packages) in " + filepath.Join(other, IPAPackageMk), func(o *Options) { o.External = other }},
	}
	for _, c := range cases {
		o := base
		c.edit(&o)
		err := l.Check(o)
		var me *LockMismatchError
		if !errors.As(err, &me) || me.Field != c.field {
			t.Errorf("%s changed: error %v", c.field, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !errors.Is(err, ErrLockMismatch) || strings.Contains(msg, "--") || !strings.Contains(msg, c.field+" is ") {
			t.Errorf("%s: message %q", c.field, msg)
		}
	}
	// A configuration with ipa and requirements needs a wheel closure in the lock.
	noPython := sampleLock()
	noPython.Python = nil
	var me *LockMismatchError
	if err := noPython.Check(base); !errors.As(err, &me) || me.Field != "python" {
		t.Errorf("lock without wheels: %v", err)
	}
	// --builder-image overrides the pin, so builder.id is not compared then.
	o := base
	o.BuilderPin, o.AllowUnpinned = "sha256:"+strings.Repeat("2", 64), true
	if err := l.Check(o); err != nil {
		t.Errorf("--builder-image: %v", err)
	}
}

// TestExternalBuildrootPackages reads the real external tree's python-* dependencies.
func TestExternalBuildrootPackages(t *testing.T) {
	got, err := ExternalBuildrootPackages("../buildroot-external")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"python-cffi", "python-cryptography", "python-markupsafe", "python-msgpack", "python-psutil", "python-pyyaml", "python-wrapt"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if v, err := BuildrootPythonVersion("testdata/buildroot-standin"); err != nil || v != "3.12.13" {
		t.Errorf("stand-in python version %q, %v", v, err)
	}
}
