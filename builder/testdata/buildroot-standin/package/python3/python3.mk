# Stand-in (NOT Buildroot): the two lines of Buildroot 2025.02's package/python3/python3.mk
# that `ipa-oci lock` reads for the target's CPython version.
PYTHON3_VERSION_MAJOR = 3.12
PYTHON3_VERSION = $(PYTHON3_VERSION_MAJOR).13
