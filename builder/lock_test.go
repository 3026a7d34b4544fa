package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ipa-oci/ipa-oci/internal/lockfixture"
)

// lockFixture is a build fixture whose IPA and requirements stand-ins are lockfixture's, with
// the test index as pythonIndex and an external tree that builds the agent with python-cbits.
func newLockFixture(t testing.TB) (*fixture, *lockfixture.Inputs) {
	t.Helper()
	f := newFixture(t)
	in := lockfixture.NewInputs(t, filepath.Join(f.dir, "lockgit"))
	lockfixture.WritePackageMk(t, f.external)
	return f, in
}

func (f *fixture) lockOptions(in *lockfixture.Inputs, out string) Options {
	o := f.options(out)
	o.IPA = GitSource{Repo: in.IPA.URL, Ref: "master"}
	o.Requirements = GitSource{Repo: in.Requirements.URL, Ref: "master"}
	o.PythonIndex = in.Index.URL
	return o
}

// TestLockResolvesClosure resolves the test index's closure in the builder container and
// checks the lock wheel by wheel (name, version, URL, sha256 of the bytes the index serves,
// architectures), the other pinned inputs, the round trip through the file format, and that
// a second resolution gives the same bytes without downloading any wheel again.
func TestLockResolvesClosure(t *testing.T) {
	f, in := newLockFixture(t)
	ctx := context.Background()
	o := f.lockOptions(in, "")
	l, err := ResolveLock(ctx, o)
	if err != nil {
		t.Fatalf("lock: %v\n%s", err, f.logBuf)
	}
	type pin struct{ name, version, url, sha string }
	for _, arch := range Arches {
		var got, want []pin
		for _, w := range l.WheelsFor(arch) {
			got = append(got, pin{w.Name, w.Version, w.URL, w.SHA256})
		}
		for _, w := range lockfixture.Closure(arch) {
			want = append(want, pin{lockfixture.Canonical(w.Name), w.Version, in.Index.URLOf(w.FileName()), w.SHA256()})
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s closure:\n got %v\nwant %v", arch, got, want)
		}
	}
	ipaHead := gitRev(t, in.IPA.Bare, "master")
	reqHead := gitRev(t, in.Requirements.Bare, "master")
	checks := []struct{ name, got, want string }{
		{"buildroot.url", l.Buildroot.URL, tenv.brURL},
		{"buildroot.sha256", l.Buildroot.SHA256, tenv.brSHA},
		{"builderImage", l.BuilderImage, tenv.imageID},
		{"ipa.commit", l.IPA.Commit, ipaHead},
		{"ipa.ref", l.IPA.Ref, "master"},
		{"requirements.commit", l.Requirements.Commit, reqHead},
		{"python.index", l.Python.Index, in.Index.URL},
		{"python.version", l.Python.Version, "3.12.13"}, // the stand-in tree's package/python3/python3.mk
		{"python.buildrootPackages", strings.Join(l.Python.BuildrootPackages, " "), "python-cbits"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("lock %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if l.SourceDateEpoch != 1700000000 {
		t.Errorf("sourceDateEpoch %d, want the IPA commit time 1700000000", l.SourceDateEpoch)
	}
	// Each wheel of the union was downloaded once; the Buildroot-provided cbits, the refused
	// fastext, the platform delta and the unpinned beta 1.0 never.
	files := map[string]bool{}
	for _, w := range l.Python.Wheels {
		files[w.File()] = true
		data, err := os.ReadFile(filepath.Join(o.DLDir, "ironic-python-agent", w.File()))
		if err != nil || sha256hex(data) != w.SHA256 {
			t.Errorf("%s is not in the download cache with its sha256 (%v)", w.File(), err)
		}
	}
	if len(files) != 7 || in.Index.FileHits() != 7 {
		t.Errorf("%d wheels locked, %d downloads; want 7 and 7", len(files), in.Index.FileHits())
	}

	// The file format round-trips.
	data := l.Marshal()
	l2, err := ParseLock(data)
	if err != nil {
		t.Fatalf("parse the lock's own bytes: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(l, l2) {
		t.Errorf("lock changed through Marshal/ParseLock:\n%+v\n%+v", l, l2)
	}
	// Resolving again without changes: the same bytes, no wheel downloaded again.
	l3, err := ResolveLock(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l3.Marshal(), data) {
		t.Errorf("second resolution differs:\n%s\nvs\n%s", l3.Marshal(), data)
	}
	if n := in.Index.FileHits(); n != 7 {
		t.Errorf("the second resolution downloaded %d wheels", n-7)
	}
}

// TestBuildFromLockInstallsClosure builds from a lock: the fetch phase downloads the wheels
// through the stand-in's Buildroot-like hash check, the build phase (no network) installs
// exactly the architecture's closure into the target, and build-info carries the lock.
func TestBuildFromLockInstallsClosure(t *testing.T) {
	f, in := newLockFixture(t)
	ctx := context.Background()
	l, err := ResolveLock(ctx, f.lockOptions(in, ""))
	if err != nil {
		t.Fatalf("lock: %v\n%s", err, f.logBuf)
	}
	for _, arch := range Arches {
		out := filepath.Join(f.dir, "out-"+arch)
		o := f.options(out)
		o.Arch = arch
		o.DLDir = filepath.Join(f.dir, "dl-"+arch) // empty: the fetch phase downloads every wheel
		o.Lock = l
		o.IPA, o.Requirements = GitSource{}, GitSource{} // the lock's, whatever the options say
		res, err := Build(ctx, o)
		if err != nil {
			t.Fatalf("%s build: %v\n%s", arch, err, f.logBuf)
		}
		if got, want := lockfixture.DistInfos(t, res.Initramfs), lockfixture.ClosureDistInfos(arch); !reflect.DeepEqual(got, want) {
			t.Errorf("%s initramfs site-packages:\n got %v\nwant %v", arch, got, want)
		}
		log := string(mustRead(t, res.BuildLog))
		for _, w := range lockfixture.Closure(arch) {
			for _, line := range []string{"[fetch] >>> ironic-python-agent wheels Downloading " + w.FileName(),
				"[fetch] " + w.FileName() + ": OK (sha256: " + w.SHA256() + ")", "[build] standin: installed " + w.FileName()} {
				if !strings.Contains(log, line+"\n") {
					t.Errorf("%s build.log lacks %q", arch, line)
				}
			}
		}
		env := string(mustRead(t, filepath.Join(out, "buildroot", "build", "standin-env.txt")))
		if !strings.Contains(env, WheelsMkVar+"="+ContainerLock+"/"+WheelsMkName) {
			t.Errorf("make did not get %s on its command line", WheelsMkVar)
		}
		if res.Info.Lock == nil || !bytes.Equal(res.Info.Lock.Marshal(), l.Marshal()) {
			t.Errorf("build-info's lock differs from the lock built")
		}
		if res.Info.Inputs.IPA.Commit != l.IPA.Commit || res.Info.Inputs.Requirements.Ref != "master" {
			t.Errorf("build-info inputs %+v %+v, want the lock's", res.Info.Inputs.IPA, res.Info.Inputs.Requirements)
		}
	}
}

// TestLockedWheelReplacedOnIndex replaces a locked wheel on the index (same name, other
// bytes): a build on an empty download cache is refused in the fetch phase by the hash check,
// with one line naming the wheel, and the file never enters the download cache.
func TestLockedWheelReplacedOnIndex(t *testing.T) {
	f, in := newLockFixture(t)
	ctx := context.Background()
	l, err := ResolveLock(ctx, f.lockOptions(in, ""))
	if err != nil {
		t.Fatalf("lock: %v\n%s", err, f.logBuf)
	}
	evil := lockfixture.Beta20
	evil.Salt = "replaced after the lock"
	in.Index.Put(t, evil)
	o := f.options(filepath.Join(f.dir, "out"))
	o.DLDir = filepath.Join(f.dir, "dl-fresh")
	o.Lock = l
	_, err = Build(ctx, o)
	var we *WheelHashError
	if !errors.As(err, &we) {
		t.Fatalf("build with a replaced wheel: %v, want a WheelHashError\n%s", err, f.logBuf)
	}
	msg := err.Error()
	if we.File != evil.FileName() || we.Locked != lockfixture.Beta20.SHA256() || we.Got != evil.SHA256() ||
		strings.Contains(msg, "\n") || !strings.Contains(msg, "wheel beta-2.0-py3-none-any.whl from "+in.Index.URLOf(evil.FileName())) ||
		!strings.Contains(msg, "find out why before accepting it by locking anew") || !errors.Is(err, ErrRelock) {
		t.Errorf("error %+v:\n%s", we, msg)
	}
	var ce *ContainerExitError
	if !errors.As(err, &ce) || ce.Phase != "fetch" {
		t.Errorf("the refusal did not come from the fetch phase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.DLDir, "ironic-python-agent", evil.FileName())); err == nil {
		t.Error("the replaced wheel was moved into the download cache")
	}
}

func gitRev(t *testing.T, bare, ref string) string {
	t.Helper()
	out, err := exec.Command("git", "--git-dir="+bare, "rev-parse", ref).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
