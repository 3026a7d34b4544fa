#!/usr/bin/env python3
"""install-wheels.py SITE_PACKAGES WHEEL...: the stand-in's (NOT Buildroot's) version of what
the ironic-python-agent package does with support/scripts/pyinstaller.py: unpack each wheel's
files into the target's site-packages. Nothing is run, no pip, no network."""
import os, sys, zipfile

site = sys.argv[1]
os.makedirs(site, exist_ok=True)
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or parts[0].endswith(".data"):
                sys.exit("standin: %s: refusing to install %s" % (wheel, name))
            z.extract(name, site)
    print("standin: installed %s" % os.path.basename(wheel))
