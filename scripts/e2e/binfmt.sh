#!/usr/bin/env bash
# Makes sure arm64 programs run on this (amd64) machine under emulation, as the
# multi-platform tests need (BuildKit RUN steps of linux/arm64 images, `docker run
# --platform linux/arm64`, debootstrap's second stage for the arm64 base image):
#   1. binfmt_misc is mounted at /proc/sys/fs/binfmt_misc (the kernel has it; a VM or
#      container without systemd often leaves it unmounted);
#   2. qemu-aarch64 is registered with the F flag ("fix binary": the kernel opens the
#      interpreter once, at registration, so it is found inside containers and chroots whose
#      file system has no /usr/libexec/qemu-binfmt), from qemu-user-static's own format file
#      through binfmt-support's update-binfmts.
# Idempotent: does nothing when both hold. Touches only the qemu-aarch64 entry (a registration
# without F is replaced; other handlers are left alone). Run by base-images.sh.
# Usage: scripts/e2e/binfmt.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

BINFMT=/proc/sys/fs/binfmt_misc
HANDLER=$BINFMT/qemu-aarch64
FORMAT=/usr/share/binfmts/qemu-aarch64

need_root
need_cmd update-binfmts mount
[[ -f $FORMAT ]] || die "$FORMAT missing: run scripts/e2e/install.sh (qemu-user-static, binfmt-support)"

if [[ ! -e $BINFMT/register ]]; then
    grep -qw binfmt_misc /proc/filesystems \
        || die "the kernel has no binfmt_misc (/proc/filesystems): arm64 cannot be emulated here"
    log "mounting binfmt_misc on $BINFMT"
    mount -t binfmt_misc binfmt_misc "$BINFMT" || die "mount -t binfmt_misc failed"
fi
if [[ $(<"$BINFMT/status") != enabled ]]; then
    log "binfmt_misc was disabled: enabling it"
    echo 1 >"$BINFMT/status"
fi

# ok: the handler is there, enabled, with the F flag.
ok() {
    [[ -e $HANDLER ]] && [[ $(head -n1 "$HANDLER") == enabled ]] \
        && grep -Eq '^flags: .*F' "$HANDLER"
}

if ok; then
    log "qemu-aarch64 registered ($(grep '^flags:' "$HANDLER"), $(grep '^interpreter' "$HANDLER"))"
    exit 0
fi
if [[ -e $HANDLER ]]; then
    log "qemu-aarch64 registered without the F flag or disabled: registering it again"
    echo -1 >"$HANDLER"
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 \
    || update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
ok || die "qemu-aarch64 is still not registered with the F flag (see $HANDLER and $FORMAT)"
log "qemu-aarch64 registered ($(grep '^flags:' "$HANDLER"), $(grep '^interpreter' "$HANDLER"))"
