#!/usr/bin/env python3
"""ipa-oci lock: resolve ironic-python-agent's Python dependency closure (embedded in ipa-oci).

Runs in the builder container during `ipa-oci lock`, with network, as the invoking user.
Reads INPUT/request.json, INPUT/requirements.txt (the agent's) and INPUT/upper-constraints.txt
(openstack/requirements'), resolves the closure for Buildroot's CPython on each architecture
the way pip would against upper-constraints (environment markers evaluated for the target,
not for this interpreter), picks one pure-Python wheel per dependency, downloads each wheel
into the download cache (verified against the index's sha256 when it gives one) to read its
METADATA, and writes OUTPUT/resolution.json. Nothing downloaded is installed, imported or run.
Dependencies that Buildroot builds (request "buildrootPackages") are left out with their own
dependencies. The first problem (a dependency with no pure-Python wheel, a pin missing from the
index, a conflict, ...) stops the resolution and is reported in resolution.json, exit status 0;
ipa-oci turns it into its error message. Any other exit status is a crash.
"""
import collections
import email.parser
import hashlib
import html.parser
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import compatible_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

INPUT, OUTPUT = sys.argv[1], sys.argv[2]
TIMEOUT = 60
MAX_METADATA = 4 << 20


class Problem(Exception):
    """A resolution problem reported to ipa-oci (kind, name, version, file, requiredBy, detail)."""

    def __init__(self, kind, name="", version="", file="", required_by="", detail=""):
        super().__init__(kind)
        self.fields = {"kind": kind, "name": name, "version": version, "file": file,
                       "requiredBy": required_by, "detail": detail}


class Links(html.parser.HTMLParser):
    """The <a> elements of a PEP 503 project page: (text, href, attributes)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links, self._a, self._text = [], None, []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._a, self._text = dict(attrs), []

    def handle_data(self, data):
        if self._a is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._a is not None:
            self.links.append(("".join(self._text).strip(), self._a.get("href") or "", self._a))
            self._a = None


def fetch(url, accept):
    req = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "ipa-oci-lock"})
    return urllib.request.urlopen(req, timeout=TIMEOUT)


class Index:
    def __init__(self, base):
        self.base = base.rstrip("/") + "/"
        self.pages = {}

    def files(self, name, required_by):
        """[(file, url, sha256 or None, requires_python or None, yanked)] of project name."""
        if name in self.pages:
            return self.pages[name]
        page = urllib.parse.urljoin(self.base, name + "/")
        try:
            with fetch(page, "text/html") as resp:
                body = resp.read().decode("utf-8", "replace")
                page = resp.geturl()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise Problem("not-found", name, required_by=required_by, detail=self.base)
            raise Problem("http", name, required_by=required_by, detail="%s: HTTP %s" % (page, e.code))
        except (urllib.error.URLError, OSError) as e:
            raise Problem("http", name, required_by=required_by, detail="%s: %s" % (page, getattr(e, "reason", e)))
        parser = Links()
        parser.feed(body)
        out = []
        for text, href, attrs in parser.links:
            url, _, fragment = urllib.parse.urljoin(page, href).partition("#")
            file = urllib.parse.unquote(url.rsplit("/", 1)[-1])
            sha = None
            if fragment.startswith("sha256="):
                sha = fragment[len("sha256="):].lower()
            out.append((file, url, sha, attrs.get("data-requires-python"), "data-yanked" in attrs))
        self.pages[name] = out
        return out


def sdist_version(file, name):
    for ext in (".tar.gz", ".zip", ".tar.bz2"):
        if file.endswith(ext):
            base = file[: -len(ext)]
            i = base.rfind("-")
            if i > 0 and canonicalize_name(base[:i]) == name:
                try:
                    return Version(base[i + 1:])
                except InvalidVersion:
                    return None
    return None


def read_requirements(path, what):
    """Requirement objects of a requirements file; only plain requirement lines."""
    out, pending = [], ""
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = pending + raw.rstrip("\n")
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            pending = ""
            line = line.strip()
            if line.startswith("#"):
                continue
            line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("-"):
                raise Problem("bad-requirement", detail="%s line %d: option lines (%s) are not supported" % (what, n, line.split()[0]))
            try:
                r = Requirement(line)
            except InvalidRequirement as e:
                raise Problem("bad-requirement", detail="%s line %d: %s" % (what, n, e))
            if r.url:
                raise Problem("bad-requirement", canonicalize_name(r.name), detail="%s line %d: direct URL requirements are not supported" % (what, n))
            out.append(r)
    return out


def marker_ok(marker, env, extras):
    if marker is None:
        return True
    return any(marker.evaluate(dict(env, extra=e)) for e in extras)


class Resolver:
    def __init__(self, req, arch, index, cache):
        self.arch = arch
        self.index = index
        self.cache = cache
        full = req["pythonVersion"]
        major, minor = (int(x) for x in full.split(".")[:2])
        self.python = Version(full)
        self.env = {
            "implementation_name": "cpython", "implementation_version": full,
            "os_name": "posix", "platform_machine": arch["machine"], "platform_release": "",
            "platform_system": "Linux", "platform_version": "", "python_full_version": full,
            "platform_python_implementation": "CPython", "python_version": "%d.%d" % (major, minor),
            "sys_platform": "linux",
        }
        # Pure-Python tags CPython X.Y accepts, most specific first.
        self.pure = [str(t) for t in compatible_tags((major, minor), "cp%d%d" % (major, minor), ["any"])]
        self.provided = set(req["buildrootPackages"])
        self.exclude = set(canonicalize_name(n) for n in req.get("exclude", []))

    def provided_by_buildroot(self, name):
        return ("python-" + name) in self.provided or (name.startswith("python-") and name in self.provided)

    def resolve(self, top, constraints):
        pins = {}
        for c in constraints:
            if c.marker is not None and not c.marker.evaluate(dict(self.env, extra="")):
                continue
            spec = list(c.specifier)
            if len(spec) == 1 and spec[0].operator in ("===", "=="):
                pins[canonicalize_name(c.name)] = spec[0].version
        chosen = collections.OrderedDict()
        queue = collections.deque((r, "ironic-python-agent", ("",)) for r in top)
        while queue:
            r, parent, parent_extras = queue.popleft()
            if not marker_ok(r.marker, self.env, parent_extras):
                continue
            name = canonicalize_name(r.name)
            if name in self.exclude or self.provided_by_buildroot(name):
                continue
            if name in chosen:
                c = chosen[name]
                if not r.specifier.contains(c["v"], prereleases=True):
                    raise Problem("conflict", name, str(c["v"]), required_by=parent,
                                  detail="%s requires %s%s but %s was chosen (for %s)" % (parent, name, r.specifier, c["v"], c["requiredBy"]))
                new = set(r.extras) - c["extras"]
                if new:
                    c["extras"] |= new
                    for d in c["deps"]:
                        queue.append((d, name, tuple(sorted(new))))
                continue
            c = self.pick(name, r, pins.get(name), parent)
            c["extras"] = set(r.extras)
            chosen[name] = c
            for d in c["deps"]:
                queue.append((d, name, ("",) + tuple(sorted(r.extras))))
        return [{"name": n, "version": c["version"], "url": c["url"], "sha256": c["sha256"]}
                for n, c in sorted(chosen.items())]

    def pick(self, name, r, pin, parent):
        files = self.index.files(name, parent)
        by_version = collections.defaultdict(list)
        for f in files:
            file, url, sha, requires_python, yanked = f
            if file.endswith(".whl"):
                try:
                    wname, v, _, tags = parse_wheel_filename(file)
                except (InvalidWheelFilename, InvalidVersion):
                    continue
                if wname != name:
                    continue
                by_version[v].append((f, {str(t) for t in tags}))
            else:
                v = sdist_version(file, name)
                if v is not None:
                    by_version[v].append((f, set()))
        if pin is not None:
            try:
                v = Version(pin)
            except InvalidVersion:
                raise Problem("bad-requirement", name, pin, required_by=parent,
                              detail="upper-constraints.txt: %s===%s is not a PEP 440 version" % (name, pin))
            if v not in by_version:
                raise Problem("pin-not-found", name, pin, required_by=parent, detail=self.index.base)
            if not r.specifier.contains(v, prereleases=True):
                raise Problem("conflict", name, pin, required_by=parent,
                              detail="upper-constraints.txt pins %s===%s but %s requires %s%s" % (name, pin, parent, name, r.specifier))
            candidates = [v]
        else:
            candidates = sorted((v for v, fs in by_version.items()
                                 if r.specifier.contains(v) and not all(f[0][4] for f in fs)), reverse=True)
            if not candidates:
                raise Problem("no-version", name, required_by=parent,
                              detail="no version matching %r on %s" % (str(r.specifier) or "any", self.index.base))
            # The newest version with a pure wheel; if none has one, report the newest.
            for v in candidates:
                if self.pure_file(by_version[v]) is not None:
                    candidates = [v]
                    break
            else:
                candidates = candidates[:1]
        v = candidates[0]
        f = self.pure_file(by_version[v])
        if f is None:
            wheels = [x[0][0] for x in by_version[v] if x[0][0].endswith(".whl")]
            native = [w for w in wheels if self.arch["machine"] in w] or wheels
            sdists = [x[0][0] for x in by_version[v] if not x[0][0].endswith(".whl")]
            raise Problem("no-pure-wheel", name, str(v), (sorted(native) or sorted(sdists) or [""])[0], parent)
        file, url, sha, requires_python, _ = f
        if requires_python and not SpecifierSet(requires_python).contains(self.python, prereleases=True):
            raise Problem("requires-python", name, str(v), file, parent, requires_python)
        path, sha = download(self.cache, file, url, sha, name, parent)
        meta = metadata(path, file)
        rp = meta.get("Requires-Python")
        if rp and not SpecifierSet(rp).contains(self.python, prereleases=True):
            raise Problem("requires-python", name, str(v), file, parent, rp)
        deps = []
        for d in meta.get_all("Requires-Dist") or []:
            try:
                deps.append(Requirement(d))
            except InvalidRequirement as e:
                raise Problem("bad-metadata", name, str(v), file, parent, "Requires-Dist %r: %s" % (d, e))
        return {"v": v, "version": file.split("-")[1], "url": url, "sha256": sha, "deps": deps, "requiredBy": parent}

    def pure_file(self, files):
        best = None
        for f, tags in files:
            ranks = [self.pure.index(t) for t in tags if t in self.pure]
            if ranks and (best is None or (min(ranks), f[0]) < best[0]):
                best = ((min(ranks), f[0]), f)
        return best[1] if best else None


def download(cache, file, url, sha, name, parent):
    """Path of file in the download cache, fetched unless a copy with the index's sha256 is
    there, and the sha256 of its content (which must equal the index's when it gives one)."""
    if "/" in file or file.startswith("."):
        raise Problem("bad-file", name, file=file, required_by=parent)
    dst = os.path.join(cache, file)
    if sha and os.path.isfile(dst) and sha256_file(dst) == sha:
        return dst, sha
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".lock-")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with fetch(url, "*/*") as resp:
                    while True:
                        chunk = resp.read(1 << 16)
                        if not chunk:
                            break
                        h.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as e:
                raise Problem("http", name, file=file, required_by=parent, detail="%s: %s" % (url, getattr(e, "reason", e)))
        got = h.hexdigest()
        if sha and got != sha:
            raise Problem("index-hash", name, file=file, required_by=parent, detail="index %s, download %s" % (sha, got))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
        tmp = None
        return dst, got
    finally:
        if tmp:
            os.unlink(tmp)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def metadata(path, file):
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise Problem("bad-metadata", file=file, detail="%d .dist-info/METADATA files" % len(names))
            info = z.getinfo(names[0])
            if info.file_size > MAX_METADATA:
                raise Problem("bad-metadata", file=file, detail="METADATA is %d bytes" % info.file_size)
            text = z.read(info).decode("utf-8", "replace")
    except zipfile.BadZipFile as e:
        raise Problem("bad-metadata", file=file, detail="not a zip file: %s" % e)
    return email.parser.Parser().parsestr(text, headersonly=True)


def main():
    with open(os.path.join(INPUT, "request.json")) as f:
        req = json.load(f)
    index = Index(req["index"])
    result = {"arches": {}, "problem": None}
    arch = ""
    try:
        top = read_requirements(os.path.join(INPUT, "requirements.txt"), "requirements.txt")
        constraints = read_requirements(os.path.join(INPUT, "upper-constraints.txt"), "upper-constraints.txt")
        for arch, a in sorted(req["arches"].items()):
            print("resolving the wheel closure for %s (CPython %s, %s)" % (arch, req["pythonVersion"], a["machine"]), flush=True)
            result["arches"][arch] = Resolver(req, a, index, req["cache"]).resolve(top, constraints)
            print("%s: %d wheels" % (arch, len(result["arches"][arch])), flush=True)
    except Problem as p:
        result["problem"] = dict(p.fields, arch=arch)
        print("problem: %s" % json.dumps(result["problem"]), flush=True)
    tmp = os.path.join(OUTPUT, ".resolution.json")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(OUTPUT, "resolution.json"))


if __name__ == "__main__":
    main()
