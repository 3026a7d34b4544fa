#!/usr/bin/env python3
"""Stand-in "build" (NOT Buildroot), in two steps like Buildroot's target-finalize:
  mkimages.py target OUT SRC CONFIG [EXTERNAL]  fill OUT/target (source, config, rootfs overlay)
  mkimages.py images OUT SRC CONFIG             write the bzImage-shaped kernel and pack
                                                OUT/target into a reproducible cpio.xz
Between the two the Makefile runs BR2_ROOTFS_POST_BUILD_SCRIPT, as Buildroot does."""
import hashlib, os, subprocess, sys, time

step, out, src, config = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
external = sys.argv[5] if len(sys.argv) > 5 else ""
epoch = int(os.environ["SOURCE_DATE_EPOCH"])
images = os.path.join(out, "images")
root = os.path.join(out, "target")

def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()

if step == "target":
    # Root filesystem: source + config + external overlay.
    subprocess.run(["rm", "-rf", root], check=True)
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "standin-release"), "w") as f:
        f.write("standin 1.0 epoch=%d\n" % epoch)
    subprocess.run(["cp", src, os.path.join(root, "etc", "standin-source")], check=True)
    subprocess.run(["cp", config, os.path.join(root, "etc", "standin-config")], check=True)
    # STANDIN_NONDETERMINISTIC=y in .config: a deliberately irreproducible build (tests of rebuild).
    with open(config) as f:
        if "STANDIN_NONDETERMINISTIC=y" in f.read():
            with open(os.path.join(root, "etc", "build-time"), "w") as g:
                g.write("%d\n" % time.time_ns())
    # Stand-in packages (Config.in.standin): each installs one script.
    with open(config) as f:
        cfg = f.read()
    for sym, prog in (("BR2_PACKAGE_STANDIN_EXTRA=y", "standin-extra"), ("BR2_PACKAGE_STANDIN_TOOLS=y", "standin-tools")):
        if sym in cfg.split("\n"):
            os.makedirs(os.path.join(root, "usr", "bin"), exist_ok=True)
            with open(os.path.join(root, "usr", "bin", prog), "w") as g:
                g.write("#!/bin/sh\necho %s 1.0\n" % prog)
    # Overlays: the external tree's rootfs-overlay/ (tests), then BR2_ROOTFS_OVERLAY's
    # directories, copied over the target in order, as Buildroot does.
    overlays = [os.path.join(external, "rootfs-overlay")] if external else []
    overlays += os.environ.get("STANDIN_ROOTFS_OVERLAYS", "").split()
    for overlay in overlays:
        if os.path.isdir(overlay):
            subprocess.run(["cp", "-r", overlay + "/.", root], check=True)
    sys.exit(0)

os.makedirs(images, exist_ok=True)
seed = sha(src) + sha(config) + str(epoch).encode()
# Kernel: "MZ" at 0 and the x86 boot protocol magic "HdrS" at 0x202, then a payload.
kernel = bytearray(0x400)
kernel[0:2] = b"MZ"
kernel[0x202:0x206] = b"HdrS"
payload = hashlib.sha256(seed).digest() * 64
with open(os.path.join(images, "bzImage.tmp"), "wb") as f:
    f.write(bytes(kernel) + payload)
os.replace(os.path.join(images, "bzImage.tmp"), os.path.join(images, "bzImage"))

# Mtimes clamped, modes normalised, sorted, newc cpio, xz.
for dirpath, dirnames, filenames in os.walk(root):
    for n in dirnames + filenames:
        p = os.path.join(dirpath, n)
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
        os.utime(p, (epoch, epoch), follow_symlinks=False)
os.utime(root, (epoch, epoch))
cmd = ("cd %s && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet"
       " | xz -9 -C crc32 -T1 > %s.tmp && mv %s.tmp %s") % (root, *(os.path.join(images, "rootfs.cpio.xz"),) * 3)
subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
print("standin: wrote bzImage and rootfs.cpio.xz")
