################################################################################
#
# ironic-python-agent
#
################################################################################

# The agent itself is built from git (BR2_IPA_GIT_URL / BR2_IPA_GIT_REF) with the
# pep517 python infrastructure. Its pure-Python dependencies are wheels pinned by
# ipa-oci.lock: `ipa-oci lock` resolves them against openstack/requirements'
# upper-constraints.txt, and `ipa-oci build` generates from the lock a makefile
# listing one URL per wheel (IRONIC_PYTHON_AGENT_WHEELS) and a hash file with the
# sha256 of each (IRONIC_PYTHON_AGENT_WHEELS_HASH), and names the makefile on
# make's command line as IPA_OCI_WHEELS_MK. The wheels are downloads of this
# package, so `make source` fetches them (checked against that hash file) and the
# build phase needs no network. Dependencies with C extensions are Buildroot
# packages: the python-* entries of IRONIC_PYTHON_AGENT_DEPENDENCIES, which
# `ipa-oci lock` reads to leave them (and what they depend on) out of the wheels.

IRONIC_PYTHON_AGENT_VERSION = $(call qstrip,$(BR2_IPA_GIT_REF))
IRONIC_PYTHON_AGENT_SITE = $(call qstrip,$(BR2_IPA_GIT_URL))
IRONIC_PYTHON_AGENT_SITE_METHOD = git
IRONIC_PYTHON_AGENT_LICENSE = Apache-2.0
IRONIC_PYTHON_AGENT_LICENSE_FILES = LICENSE
IRONIC_PYTHON_AGENT_SETUP_TYPE = pep517
IRONIC_PYTHON_AGENT_ENV = PBR_VERSION=$(call qstrip,$(BR2_IPA_PBR_VERSION))
IRONIC_PYTHON_AGENT_DEPENDENCIES = \
	host-python-pbr \
	host-python-setuptools \
	python-cffi \
	python-cryptography \
	python-markupsafe \
	python-msgpack \
	python-psutil \
	python-pyyaml \
	python-wrapt

# Install every dependency wheel the way the pep517 infrastructure installs the
# wheel it builds (support/scripts/pyinstaller.py, no pip, no network).
define IRONIC_PYTHON_AGENT_INSTALL_WHEELS
	$(foreach w,$(notdir $(IRONIC_PYTHON_AGENT_WHEELS)),\
		cd $(@D) && $(PKG_PYTHON_PEP517_ENV) $(HOST_DIR)/bin/python3 \
			$(TOPDIR)/support/scripts/pyinstaller.py \
			$(IRONIC_PYTHON_AGENT_DL_DIR)/$(w) \
			$(PKG_PYTHON_PEP517_INSTALL_OPTS) \
			--purelib=$(TARGET_DIR)/usr/lib/python$(PYTHON3_VERSION_MAJOR)/site-packages \
			--headers=$(TARGET_DIR)/usr/include/python$(PYTHON3_VERSION_MAJOR) \
			--scripts=$(TARGET_DIR)/usr/bin \
			--data=$(TARGET_DIR)$(sep))
endef
IRONIC_PYTHON_AGENT_POST_INSTALL_TARGET_HOOKS += IRONIC_PYTHON_AGENT_INSTALL_WHEELS

$(eval $(python-package))

# The wheel list is included after $(python-package), which takes the package's
# name from the last makefile read. Everything below is used lazily by the
# package infrastructure (at download time).
ifneq ($(IPA_OCI_WHEELS_MK),)
include $(IPA_OCI_WHEELS_MK)
endif

IRONIC_PYTHON_AGENT_EXTRA_DOWNLOADS = $(IRONIC_PYTHON_AGENT_WHEELS)
# Buildroot's hash check also reads the generated hash file, so every wheel is
# checked against the lock's sha256 (one missing from it is refused: "No hash
# found"). The agent's own tarball cannot have a fixed hash: its git ref is a
# configuration option.
IRONIC_PYTHON_AGENT_HASH_FILES += $(IRONIC_PYTHON_AGENT_WHEELS_HASH)
BR_NO_CHECK_HASH_FOR += $(IRONIC_PYTHON_AGENT_SOURCE)

ifeq ($(BR_BUILDING),y)
ifeq ($(BR2_PACKAGE_IRONIC_PYTHON_AGENT),y)
ifeq ($(strip $(IRONIC_PYTHON_AGENT_WHEELS)),)
$(error ironic-python-agent: no wheel list: IPA_OCI_WHEELS_MK is not set on make's command line (or names a file listing no wheels); build with `ipa-oci build`, which generates it from ipa-oci.lock (`ipa-oci lock` resolves the wheels))
endif
endif
endif
