// Package lockfixture holds the test inputs of `ipa-oci lock`: small but real Python wheels
// built in Go (a zip with the module, METADATA, WHEEL and RECORD), a PEP 503 "simple" index
// serving them over HTTP from a directory, and bare git repositories standing in for
// ironic-python-agent (requirements.txt) and openstack/requirements (upper-constraints.txt).
// It is test code: it lives under internal/ so it never becomes API.
package lockfixture

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Wheel describes one wheel to build.
type Wheel struct {
	Name           string   // distribution name as published, e.g. "Name_With.Dots"
	Version        string   // e.g. "1.0"
	Tag            string   // python-abi-platform; default "py3-none-any"
	Requires       []string // Requires-Dist values, e.g. `beta>=1.0`, `gamma[fast]`, `delta; extra == "x"`
	Extras         []string // Provides-Extra values
	RequiresPython string   // Requires-Python (METADATA and the index's data-requires-python)
	Salt           string   // extra module content: the same name and version with other bytes
}

var escapeRE = regexp.MustCompile(`[-_.]+`)

// Canonical is the PEP 503 normalised name: lower case, runs of -_. as one "-".
func Canonical(name string) string { return strings.ToLower(escapeRE.ReplaceAllString(name, "-")) }

// escaped is the PEP 427 file-name form of a name: runs of -_. as "_".
func escaped(name string) string { return escapeRE.ReplaceAllString(name, "_") }

func (w Wheel) tag() string {
	if w.Tag == "" {
		return "py3-none-any"
	}
	return w.Tag
}

// FileName is NAME-VERSION-TAG.whl with the name escaped as PEP 427 says.
func (w Wheel) FileName() string {
	return fmt.Sprintf("%s-%s-%s.whl", escaped(w.Name), w.Version, w.tag())
}

// Bytes builds the wheel: a deterministic zip (fixed times, sorted names) holding
// <module>/__init__.py and the .dist-info directory with METADATA, WHEEL and RECORD.
func (w Wheel) Bytes() []byte {
	module := strings.ToLower(escaped(w.Name))
	distInfo := fmt.Sprintf("%s-%s.dist-info", escaped(w.Name), w.Version)
	var meta strings.Builder
	fmt.Fprintf(&meta, "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: ipa-oci lock test wheel\n", w.Name, w.Version)
	if w.RequiresPython != "" {
		fmt.Fprintf(&meta, "Requires-Python: %s\n", w.RequiresPython)
	}
	for _, e := range w.Extras {
		fmt.Fprintf(&meta, "Provides-Extra: %s\n", e)
	}
	for _, r := range w.Requires {
		fmt.Fprintf(&meta, "Requires-Dist: %s\n", r)
	}
	pure := strings.HasSuffix(w.tag(), "-none-any")
	files := map[string]string{
		module + "/__init__.py": fmt.Sprintf("__version__ = %q\n# %s\n", w.Version, w.Salt),
		distInfo + "/METADATA":  meta.String(),
		distInfo + "/WHEEL": fmt.Sprintf("Wheel-Version: 1.0\nGenerator: ipa-oci-lockfixture\nRoot-Is-Purelib: %t\nTag: %s\n",
			pure, w.tag()),
	}
	names := make([]string, 0, len(files)+1)
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var record strings.Builder
	for _, n := range names {
		h := sha256.Sum256([]byte(files[n]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(h[:]), len(files[n]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	files[distInfo+"/RECORD"] = record.String()
	names = append(names, distInfo+"/RECORD")

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			panic(err)
		}
		fw.Write([]byte(files[n]))
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// DistInfo is the .dist-info directory name the wheel installs.
func (w Wheel) DistInfo() string { return fmt.Sprintf("%s-%s.dist-info", escaped(w.Name), w.Version) }

// SHA256 is the hex sha256 of Bytes().
func (w Wheel) SHA256() string {
	h := sha256.Sum256(w.Bytes())
	return fmt.Sprintf("%x", h[:])
}
