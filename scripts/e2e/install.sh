#!/usr/bin/env bash
# Installs the Debian packages the end-to-end harness needs (idempotent).
# Runs `apt-get update` once, and only when something is missing.
# Daemons are NOT started by the packages' maintainer scripts (a temporary policy-rc.d
# denies it): scripts/e2e/up.sh starts them with its own configs.
set -euo pipefail

# qemu-user-static + binfmt-support: arm64 RUN steps and containers run under emulation
# (the multi-platform tests; base-images.sh runs binfmt.sh, which registers the handler).
PKGS=(docker.io iptables docker-registry skopeo umoci debootstrap busybox-static
      apache2-utils openssl curl jq ca-certificates python3-pip
      qemu-user-static binfmt-support)

die() { echo "install.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (apt-get)"

missing=()
for p in "${PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "install.sh: all packages present"
    exit 0
fi

echo "install.sh: installing: ${missing[*]}"
# Keep package postinst scripts from starting dockerd / the registry with the package
# defaults (the registry's binds every interface): only when no policy is in place already.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
cleanup() { if ((made_policy)); then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q || die "apt-get update failed"
apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"

for p in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || die "package $p still not installed"
done
echo "install.sh: done"
