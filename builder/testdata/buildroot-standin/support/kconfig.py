#!/usr/bin/env python3
"""Stand-in for Kconfig (NOT Buildroot's kconfig, NOT the kernel's): just enough of conf and
mconf for the tests of `ipa-oci make`.

  kconfig.py DECLS defconfig DEFCONFIG CONFIG   write CONFIG: every declared symbol at its
                                                default, then DEFCONFIG's assignments
  kconfig.py DECLS savedefconfig CONFIG OUT     write OUT: the assignments of CONFIG that
                                                differ from the declared defaults (minimal)
  kconfig.py DECLS menuconfig CONFIG            a full-screen editor on a terminal (raw mode)

DECLS is a list of files declaring symbols, one per line: NAME TYPE DEFAULT "PROMPT" (TYPE bool,
tristate or string). Like kconfig, the defconfig, savedefconfig and menuconfig outputs are
ordered by declaration and "# NAME is not set" stands for n. Unlike kconfig, symbols nobody
declares are kept as they are (after the declared ones) instead of being dropped, because the
tests' defconfigs set many the stand-in does not declare. BR2_DEFCONFIG is the path of the
defconfig a .config came from, as in Buildroot (DEFCONFIG_PATH in the environment sets it).

menuconfig: the first line shows the terminal's size (what the container's TTY says, read at
every redraw, so a resize shows after the next key). Keys:
j/k or the arrow keys move, space cycles n->m->y (bool: n<->y), y/m/n set, q or ESC ESC leaves;
when something changed it asks "Save the configuration? [y/n]" and writes CONFIG on y or
Enter. Without a terminal it exits 1 like mconf does ("not a terminal").
"""
import os, re, shlex, sys


def load_decls(spec):
    decls = []
    for path in spec.split(":"):
        if not path or not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                name, typ, default, prompt = shlex.split(line)
                decls.append((name, typ, default, prompt))
    return decls


ASSIGN = re.compile(r"^([A-Za-z0-9_]+)=(.*)$")
NOTSET = re.compile(r"^# ([A-Za-z0-9_]+) is not set$")


def read_config(path):
    vals = {}  # insertion-ordered
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = ASSIGN.match(line)
            if m:
                vals[m.group(1)] = m.group(2)
                continue
            m = NOTSET.match(line)
            if m:
                vals[m.group(1)] = "n"
    return vals


def fmt(decl_type, name, value):
    if value == "n" and decl_type in ("bool", "tristate", None):
        return "# %s is not set" % name
    if decl_type == "string" and not value.startswith('"'):
        value = '"%s"' % value
    return "%s=%s" % (name, value)


def default_of(typ, default):
    return '"%s"' % default if typ == "string" else default


def write_config(path, decls, vals):
    known = {d[0] for d in decls}
    lines = ["# Stand-in .config (NOT Buildroot's kconfig)"]
    for name, typ, default, _ in decls:
        lines.append(fmt(typ, name, vals.get(name, default_of(typ, default))))
    for name, value in vals.items():
        if name not in known:
            lines.append(fmt(None, name, value))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def defconfig(decls, src, config):
    vals = read_config(src)
    vals.pop("BR2_DEFCONFIG", None)
    if os.environ.get("DEFCONFIG_PATH"):
        vals["BR2_DEFCONFIG"] = '"%s"' % os.environ["DEFCONFIG_PATH"]
    write_config(config, decls, vals)


def savedefconfig(decls, config, out):
    vals = read_config(config)
    known = {d[0] for d in decls}
    lines = []
    for name, typ, default, _ in decls:
        if name in vals and vals[name] != default_of(typ, default):
            lines.append(fmt(typ, name, vals[name]))
    for name, value in vals.items():
        if name not in known:
            lines.append(fmt(None, name, value))
    try:
        with open(out, "w") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
    except OSError as e:
        sys.exit("*** Error while saving defconfig to: %s (%s)" % (out, e.strerror))


def menuconfig(decls, config):
    if not os.isatty(0) or not os.isatty(1):
        sys.stderr.write("stand-in menuconfig: not a terminal (menuconfig needs one)\n")
        sys.exit(1)
    import termios, tty
    vals = read_config(config)
    items = [d for d in decls if d[1] in ("bool", "tristate")]
    if not items:
        sys.stderr.write("stand-in menuconfig: nothing to configure\n")
        sys.exit(1)
    old = termios.tcgetattr(0)
    tty.setraw(0)
    cur, changed = 0, False
    out = sys.stdout

    def draw():
        cols, rows = os.get_terminal_size(1)  # follows resizes of the terminal
        out.write("\x1b[2J\x1b[H")
        out.write("stand-in menuconfig (NOT Buildroot) %dx%d: %s\r\n" % (cols, rows, os.path.basename(config)))
        for i, (name, typ, default, prompt) in enumerate(items):
            v = vals.get(name, default)
            mark = {"y": "*", "m": "M", "n": " "}.get(v, "?")
            out.write("%s [%s] %s (%s)\r\n" % (">" if i == cur else " ", mark, prompt, name))
        out.write("j/k move, space y m n set, q quit\r\n")
        out.flush()

    def key():
        c = os.read(0, 1)
        if c == b"\x1b":
            n = os.read(0, 1)
            if n == b"[":
                return {b"A": "k", b"B": "j"}.get(os.read(0, 1), "")
            return "esc" if n == b"\x1b" else ""
        return c.decode("latin-1")

    try:
        draw()
        while True:
            k = key()
            if k in ("q", "esc"):
                break
            name, typ, default, _ = items[cur]
            v = vals.get(name, default)
            if k == "j":
                cur = min(cur + 1, len(items) - 1)
            elif k == "k":
                cur = max(cur - 1, 0)
            elif k in ("y", "n") or (k == "m" and typ == "tristate"):
                changed |= v != k
                vals[name] = k
            elif k == " ":
                order = ["n", "m", "y"] if typ == "tristate" else ["n", "y"]
                vals[name] = order[(order.index(v) + 1) % len(order)] if v in order else "y"
                changed = True
            draw()
        save = False
        if changed:
            out.write("Save the configuration? [y/n]\r\n")
            out.flush()
            save = key() in ("y", "\r", "\n")
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, old)
    if save:
        write_config(config, decls, vals)
        print("\nconfiguration written to %s" % config)
    else:
        print("\nconfiguration %s" % ("NOT saved" if changed else "unchanged"))


def main():
    decls = load_decls(sys.argv[1])
    cmd = sys.argv[2]
    if cmd == "defconfig":
        defconfig(decls, sys.argv[3], sys.argv[4])
    elif cmd == "savedefconfig":
        savedefconfig(decls, sys.argv[3], sys.argv[4])
    elif cmd == "menuconfig":
        menuconfig(decls, sys.argv[3])
    else:
        sys.exit("kconfig.py: unknown command %s" % cmd)


main()
