# Dockerfile.builder: the pinned container ipa-oci runs Buildroot in.
#
# Build it with `ipa-oci builder build` (Docker Engine API, classic builder, host network so
# apt reaches the mirror) and pin the printed image ID in ipa-oci.yaml (builder.id).
#
# Base: the official debian:bookworm-20251229 image, amd64 manifest, by digest
# (docker-library/repo-info, repos/debian/remote/bookworm.md). Override with
# --build-arg BASE_IMAGE=... (the test suite uses ipa-oci/debian-base:bookworm, a debootstrap
# import made by scripts/setup-test-env.sh, because no registry is reachable there).
ARG BASE_IMAGE=debian:bookworm-20251229@sha256:4216e8fe27fdd803d2822d08ed9de39825a41a47e34c32b71a23ac074f91eaf4
FROM ${BASE_IMAGE}

# APT_SNAPSHOT=YYYYMMDDTHHMMSSZ installs from snapshot.debian.org at that instant, which makes
# the package set reproducible over time. Empty (the default) uses APT_MIRROR as it is today,
# because snapshot.debian.org is not reachable from every build host (it is not from CI here).
ARG APT_SNAPSHOT=
ARG APT_MIRROR=http://deb.debian.org/debian
ARG APT_SECURITY_MIRROR=http://deb.debian.org/debian-security
# Fixed timestamp for tools that honour it (useradd's last-password-change field, ...).
ARG SOURCE_DATE_EPOCH=1766966400
ARG BUILDER_UID=1000
ARG BUILDER_GID=1000

ENV LC_ALL=C.UTF-8 \
    LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive

# Packages: Buildroot manual, "System requirements" (mandatory: which sed make binutils
# build-essential diffutils gcc g++ bash patch gzip bzip2 perl tar cpio unzip rsync file bc
# findutils wget; optional: python3, libncurses-dev for menuconfig, git, scp, bzr/cvs/hg/svn
# left out) plus ca-certificates (https downloads), xz-utils, zstd, python3-packaging (PEP 440
# versions, PEP 508 markers and wheel tags for `ipa-oci lock`'s resolver, which runs here),
# python3-pip/venv, openssh-client (scp downloads).
RUN set -eux; \
    if [ -n "$APT_SNAPSHOT" ]; then \
      mirror="http://snapshot.debian.org/archive/debian/$APT_SNAPSHOT"; \
      security="http://snapshot.debian.org/archive/debian-security/$APT_SNAPSHOT"; \
    else \
      mirror="$APT_MIRROR"; security="$APT_SECURITY_MIRROR"; \
    fi; \
    rm -f /etc/apt/sources.list.d/debian.sources; \
    printf 'deb [check-valid-until=no] %s bookworm main\ndeb [check-valid-until=no] %s bookworm-updates main\ndeb [check-valid-until=no] %s bookworm-security main\n' \
      "$mirror" "$mirror" "$security" > /etc/apt/sources.list; \
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Retries "3";\n' \
      > /etc/apt/apt.conf.d/90ipa-oci; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
      bash bc binutils build-essential bzip2 ca-certificates cpio diffutils file findutils \
      g++ gcc git gzip libncurses-dev make openssh-client patch perl python3 python3-packaging \
      python3-pip python3-venv rsync sed tar unzip wget which xz-utils zstd; \
    groupadd --gid "$BUILDER_GID" builder; \
    useradd --uid "$BUILDER_UID" --gid "$BUILDER_GID" --create-home --shell /bin/bash builder; \
    mkdir -p /ipa; chmod 0755 /ipa; \
    # Determinism: drop everything apt/dpkg/ldconfig write that depends on the build moment.
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
      /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
      /var/log/bootstrap.log /var/cache/ldconfig/aux-cache /etc/shadow- /etc/gshadow- \
      /etc/passwd- /etc/group- /etc/subuid- /etc/subgid- /root/.cache /tmp/* /var/tmp/*; \
    find / -xdev -name __pycache__ -type d -prune -exec rm -rf {} +; \
    # shadow's "last password change" is days since 1970: pin it to SOURCE_DATE_EPOCH.
    day=$((SOURCE_DATE_EPOCH / 86400)); \
    sed -i -E "s/^([^:]*:[^:]*:)[0-9]*:/\1${day}:/" /etc/shadow

USER builder
WORKDIR /ipa
CMD ["/bin/bash"]
