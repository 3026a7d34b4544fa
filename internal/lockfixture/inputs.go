package lockfixture

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The wheels of the test index. Their dependencies exercise what a resolution must get right:
// a version pinned by upper-constraints under a python_version marker (beta 2.0 for 3.12, not
// 1.0, which 3.11 would get), markers evaluated for the target CPython 3.12 and not for the
// builder's 3.11 (delta in, epsilon out, gamma's Requires-Python >=3.12 accepted), an extra
// (name-with-dots[fast] pulls gamma), a name needing PEP 503 normalisation, an arm64-only
// dependency (armonly, platform_machine == "aarch64"), a version with both a pure and a
// platform wheel (delta: the pure one is taken), a dependency Buildroot provides (cbits,
// python-cbits: left out with its own dependency zeta, which no index has), one not in
// upper-constraints (omega: the newest matching version), and a dependency with only a
// platform wheel (fastext, required on the IPA branch "fastext": refused).
var (
	Alpha   = Wheel{Name: "alpha", Version: "1.0", Requires: []string{"beta>=1.0", "Name_With.Dots[fast]>=1.0", "cbits", `armonly; platform_machine == "aarch64"`}}
	Beta10  = Wheel{Name: "beta", Version: "1.0"}
	Beta20  = Wheel{Name: "beta", Version: "2.0", Requires: []string{`delta; python_version >= "3.12"`, `epsilon; python_version < "3.12"`}}
	Dots    = Wheel{Name: "Name_With.Dots", Version: "1.5", Extras: []string{"fast"}, Requires: []string{`gamma>=2; extra == "fast"`}}
	Gamma   = Wheel{Name: "gamma", Version: "3.0", RequiresPython: ">=3.12"}
	Delta   = Wheel{Name: "delta", Version: "0.9"}
	DeltaCP = Wheel{Name: "delta", Version: "0.9", Tag: "cp312-cp312-manylinux_2_28_x86_64"}
	ArmOnly = Wheel{Name: "armonly", Version: "1.0"}
	CBits   = Wheel{Name: "cbits", Version: "1.0", Tag: "cp312-cp312-manylinux_2_28_x86_64", Requires: []string{"zeta"}}
	FastExt = Wheel{Name: "fastext", Version: "1.0", Tag: "cp312-cp312-manylinux_2_28_x86_64"}
	Omega10 = Wheel{Name: "omega", Version: "1.0"}
	Omega11 = Wheel{Name: "omega", Version: "1.1"}
)

// Requirements is the IPA stand-in's requirements.txt on master.
const Requirements = `# ironic-python-agent stand-in: the agent's direct dependencies
alpha>=0.5 # Apache-2.0
omega>=1.0  # not in upper-constraints: the newest matching version
`

// UpperConstraints is the requirements stand-in's upper-constraints.txt on master.
const UpperConstraints = `alpha===1.0
beta===2.0;python_version=='3.12'
beta===1.0;python_version=='3.11'
Name-With.Dots===1.5
gamma===3.0
delta===0.9
armonly===1.0
cbits===1.0
fastext===1.0
`

// PackageMk is the ironic-python-agent package makefile of the tests' external trees: it
// builds the agent with Buildroot's python-cbits.
const PackageMk = `IRONIC_PYTHON_AGENT_DEPENDENCIES = \
	host-python-pbr \
	python-cbits
`

// Inputs are the index and the two repositories of a lock test.
type Inputs struct {
	Index        *Index
	IPA          *Repo // master: Requirements; branch "fastext": needs fastext
	Requirements *Repo // master: UpperConstraints; branch "no-uc": no upper-constraints.txt
}

// NewInputs serves the test index and creates the repositories under dir.
func NewInputs(t testing.TB, dir string) *Inputs {
	t.Helper()
	in := &Inputs{Index: StartIndex(t, Alpha, Beta10, Beta20, Dots, Gamma, Delta, DeltaCP, ArmOnly, CBits, FastExt, Omega10, Omega11)}
	in.IPA, _ = NewRepo(t, filepath.Join(dir, "ipa.git"), "1700000000", map[string]string{"requirements.txt": Requirements, "LICENSE": "Apache-2.0\n"})
	in.IPA.Commit(t, "fastext", "1700000010", map[string]string{"requirements.txt": Requirements + "fastext\n"})
	in.Requirements, _ = NewRepo(t, filepath.Join(dir, "requirements.git"), "1700000100", map[string]string{"upper-constraints.txt": UpperConstraints})
	in.Requirements.Commit(t, "no-uc", "1700000110", map[string]string{"upper-constraints.txt": Delete, "README": "no constraints here\n"})
	return in
}

// WritePackageMk writes PackageMk into the external tree at external.
func WritePackageMk(t testing.TB, external string) {
	t.Helper()
	p := filepath.Join(external, "package", "ironic-python-agent", "ironic-python-agent.mk")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(PackageMk), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Closure is the correct resolution of the master branches for arch ("amd64" or "arm64"),
// sorted by canonical name.
func Closure(arch string) []Wheel {
	ws := []Wheel{Alpha, Beta20, Dots, Gamma, Delta, Omega11}
	if arch == "arm64" {
		ws = append(ws, ArmOnly)
	}
	sort.Slice(ws, func(i, j int) bool { return Canonical(ws[i].Name) < Canonical(ws[j].Name) })
	return ws
}

// ClosureDistInfos are the .dist-info directories Closure(arch) installs, sorted.
func ClosureDistInfos(arch string) []string {
	var ds []string
	for _, w := range Closure(arch) {
		ds = append(ds, w.DistInfo())
	}
	sort.Strings(ds)
	return ds
}

// DistInfos lists the .dist-info directories in the Python 3.12 site-packages of an
// xz-compressed cpio initramfs (xz and cpio), sorted.
func DistInfos(t testing.TB, initramfs string) []string {
	t.Helper()
	out, err := exec.Command("bash", "-o", "pipefail", "-c", `xz -dc "$1" | cpio -t --quiet`, "x", initramfs).Output()
	if err != nil {
		t.Fatalf("list %s: %v", initramfs, err)
	}
	var ds []string
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimPrefix(l, "./"), "usr/lib/python3.12/site-packages/"); ok && strings.HasSuffix(rest, ".dist-info") && !strings.Contains(rest, "/") {
			ds = append(ds, rest)
		}
	}
	sort.Strings(ds)
	return ds
}
