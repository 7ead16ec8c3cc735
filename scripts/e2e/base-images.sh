#!/usr/bin/env bash
# Makes the base images the end-to-end tests build on, pushes them to the plain registry
# (127.0.0.1:5000, see up.sh) and loads them into dockerd:
#   localhost:5000/debian-python:bookworm  debootstrap bookworm (minbase) + python3, python3-venv,
#                                          python3-pip, ca-certificates, with the host's CA bundle
#                                          baked in (pip in RUN steps needs the egress proxy CA),
#                                          ENV SSL_CERT_FILE/REQUESTS_CA_BUNDLE pointing at it (uv, requests)
#   localhost:5000/uv:0.5 (and uv:X.Y.Z)   /uv and /uvx from the uv PyPI wheel (static musl binaries),
#                                          laid out like ghcr.io/astral-sh/uv
#   localhost:5000/busybox:stable          busybox-static with its applet links
#   registry.test:5443/envd-python:bookworm debian-python + `python` + PIP_BREAK_SYSTEM_PACKAGES=1,
#                                          the envd builder's base (and the envd CLI: envd.sh)
#   localhost:5000/debian-python-multi:bookworm  an index of two platforms: linux/amd64 (the
#                                          debian-python manifest itself, copied) and linux/arm64
#                                          (the same recipe from `debootstrap --arch=arm64`, whose
#                                          second stage runs under qemu: binfmt.sh registers it);
#                                          its platforms are also tagged bookworm-amd64/-arm64
#                                          (the arm64 one in the registry only)
# An image is skipped when the registry already has it with the same recipe label (which
# includes a hash of the host CA bundle); the slow parts (rootfs tarball, uv wheel) are cached
# in $IMAGESPEC_E2E_CACHE (default /var/cache/imagespec-e2e).
# Usage: scripts/e2e/base-images.sh [--force] [--example]
#   --force:   rebuild and push them all
#   --example: only what scripts/example.sh and first-build.sh use (debian-python, uv,
#              busybox): no arm64 base (a debootstrap under qemu, 5-30 min on a cold
#              machine), no envd
# Env: IMAGESPEC_E2E_UV_VERSION (default 0.5.1, the version flytekit's Dockerfile copies),
#      IMAGESPEC_E2E_DEBIAN_MIRROR (default: the machine's own apt mirror).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

force=0 example=0
for arg in "$@"; do
    case $arg in
    --force) force=1 ;;
    --example) example=1 ;;
    *) die "unknown argument $arg (usage: base-images.sh [--force] [--example])" ;;
    esac
done

UV_VERSION=${IMAGESPEC_E2E_UV_VERSION:-0.5.1}
[[ $UV_VERSION == 0.5.* ]] || die "IMAGESPEC_E2E_UV_VERSION must be a 0.5.x version (the image is tagged uv:0.5)"
LABEL_KEY=org.imagespec.e2e.recipe
BASE_PKGS=python3,python3-venv,python3-pip,ca-certificates
ROOTFS_TAR=$E2E_CACHE/debian-bookworm-minbase-python.v1.tar
ROOTFS_TAR_ARM64=$E2E_CACHE/debian-bookworm-minbase-python.arm64.v1.tar
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LOG=$E2E_STATE/base-images.log

need_root
need_cmd "$DOCKER" skopeo debootstrap jq tar flock curl sha256sum /usr/bin/python3 chroot cmp
mkdir -p "$E2E_STATE" "$E2E_CACHE/tmp"
docker_ping || die "dockerd does not answer on $DOCKER_SOCK: run scripts/e2e/up.sh first"
curl -fs --noproxy '*' -m 5 -o /dev/null "http://127.0.0.1:$PLAIN_PORT/v2/" \
    || die "no registry on 127.0.0.1:$PLAIN_PORT: run scripts/e2e/up.sh first"

# One run at a time (they share the cache and the tags).
exec 9>"$E2E_CACHE/.lock"
flock -w 1800 9 || die "another base-images.sh holds $E2E_CACHE/.lock"

TMP=$(mktemp -d "$E2E_CACHE/tmp/run.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
: >"$LOG"

# run CMD...: runs CMD with its output in the log; on failure shows the log's tail and exits.
run() {
    echo "+ $*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        tail -n 25 "$LOG" >&2
        die "failed: $* (full log: $LOG)"
    fi
}

registry_label() { # REF -> the recipe label of REF in the registry, or nothing
    skopeo inspect --tls-verify=false --retry-times 2 "docker://$1" 2>/dev/null \
        | jq -r --arg k "$LABEL_KEY" '.Labels[$k] // empty' 2>/dev/null || true
}
daemon_label() { # REF -> the recipe label of REF in dockerd, or nothing
    "$DOCKER" image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

# ensure RECIPE BUILD_FN REF...: makes sure every REF is in the registry and in dockerd with
# label RECIPE; BUILD_FN REF RECIPE imports the first REF into dockerd when needed.
ensure() {
    local recipe=$1 build=$2
    shift 2
    local first=$1 ref t0=$SECONDS have_reg=1 have_local=1
    if ((!force)); then
        for ref in "$@"; do
            [[ $(registry_label "$ref") == "$recipe" ]] || have_reg=0
            [[ $(daemon_label "$ref") == "$recipe" ]] || have_local=0
        done
        if ((have_reg && have_local)); then
            log "$first: up to date (skipped)"
            return
        fi
        if ((have_reg)); then
            log "$first: in the registry, pulling into dockerd"
            for ref in "$@"; do run "$DOCKER" pull "$ref"; done
            log "$first: done in $((SECONDS - t0))s"
            return
        fi
    fi
    if ((force)) || [[ $(daemon_label "$first") != "$recipe" ]]; then
        log "$first: building"
        "$build" "$first" "$recipe"
    else
        log "$first: in dockerd, pushing"
    fi
    for ref in "$@"; do
        [[ $ref == "$first" ]] || run "$DOCKER" tag "$first" "$ref"
        run "$DOCKER" push "$ref"
    done
    [[ $(registry_label "$first") == "$recipe" ]] || die "$first: pushed, but the registry does not show it"
    log "$first: done in $((SECONDS - t0))s"
}

# ------------------------------------------------------------- debian-python:bookworm
debian_mirror() {
    if [[ -n ${IMAGESPEC_E2E_DEBIAN_MIRROR:-} ]]; then echo "$IMAGESPEC_E2E_DEBIAN_MIRROR"; return; fi
    local m=""
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        m=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources \
            | grep -v -- '-security' | head -n1 || true)
    fi
    if [[ -z $m && -f /etc/apt/sources.list ]]; then
        m=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list \
            | awk '$1 == "deb" && $3 ~ /^bookworm/ && $2 !~ /-security/ {print $2; exit}' || true)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# make_rootfs_tar ARCH TAR: debootstraps bookworm for ARCH into the cached tarball TAR, once.
# A foreign ARCH (arm64) needs qemu-user-static registered with the F flag (binfmt.sh): the
# second stage runs the target's own maintainer scripts in a chroot.
make_rootfs_tar() {
    local arch=$1 tar=$2 mirror root t0=$SECONDS
    [[ -s $tar ]] && return
    mirror=$(debian_mirror)
    root=$TMP/rootfs-$arch
    log "debootstrap bookworm $arch (minbase + $BASE_PKGS) from $mirror; cached as $tar"
    run debootstrap --arch="$arch" --variant=minbase --include="$BASE_PKGS" bookworm "$root" "$mirror"
    # Slim it: the .debs and package lists (RUN steps do 'apt-get update' first anyway).
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/var/log/* "$root"/tmp/* "$root"/etc/hostname "$root"/etc/resolv.conf
    run tar --numeric-owner --xattrs -C "$root" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$root"
    log "$arch rootfs cached in $((SECONDS - t0))s ($(du -h "$tar" | cut -f1))"
}

# build_debian_python REF RECIPE [ARCH]: the rootfs of ARCH (default amd64), imported as REF.
# The image's config says amd64 whatever ARCH is: dockerd 20.10 ignores `docker import
# --platform` unless it runs with experimental features (ensure_arm64_python corrects it in
# the registry).
build_debian_python() {
    local ref=$1 recipe=$2 arch=${3:-amd64} tar=$ROOTFS_TAR root=$TMP/py-root
    [[ $arch == amd64 ]] || tar=$ROOTFS_TAR_ARM64
    make_rootfs_tar "$arch" "$tar"
    mkdir -p "$root"
    run tar --numeric-owner --xattrs -C "$root" -xpf "$tar"
    # The host's CA certificates (egress proxy CA included): as local CAs, so that a later
    # update-ca-certificates in the image keeps them, and the host's merged bundle itself.
    mkdir -p "$root/usr/local/share/ca-certificates"
    if compgen -G "$HOST_CA_DIR/*.crt" >/dev/null; then
        cp "$HOST_CA_DIR"/*.crt "$root/usr/local/share/ca-certificates/"
    fi
    run chroot "$root" /usr/sbin/update-ca-certificates
    cp "$HOST_CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
    # SSL_CERT_FILE: uv (rustls + webpki roots by default) and other static tools only trust
    # the bundle when told; REQUESTS_CA_BUNDLE: requests uses certifi's bundle otherwise.
    tar --numeric-owner --xattrs -C "$root" -c . \
        | "$DOCKER" import \
            --change "ENV PATH=$STD_PATH" \
            --change "ENV LANG=C.UTF-8" \
            --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
            --change "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt" \
            --change "LABEL $LABEL_KEY=$recipe" \
            --change 'CMD ["python3"]' \
            - "$ref" >>"$LOG" 2>&1 || die "docker import of $ref failed (log: $LOG)"
    rm -rf "$root"
}

# registry_blob_upload REPO FILE: uploads FILE as a blob of REPO in the plain registry
# (monolithic: POST, then PUT with the digest); prints the digest.
registry_blob_upload() {
    local repo=$1 file=$2 digest location
    digest=sha256:$(sha256sum <"$file" | cut -d' ' -f1)
    location=$(curl -fsS --noproxy '*' -m 30 -X POST -D - -o /dev/null \
        "http://127.0.0.1:$PLAIN_PORT/v2/$repo/blobs/uploads/" \
        | awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
    [[ -n $location ]] || die "no upload location from the registry for $repo"
    [[ $location == /* ]] && location=http://127.0.0.1:$PLAIN_PORT$location
    [[ $location == *\?* ]] && location="$location&digest=$digest" || location="$location?digest=$digest"
    run curl -fsS --noproxy '*' -m 60 -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$file" "$location"
    echo "$digest"
}

# ensure_arm64_python RECIPE: $MULTI_PYTHON_IMAGE-arm64, the arm64 rootfs as an image whose
# config says linux/arm64/v8, in the registry only (dockerd gets it through the index, for
# the platform asked). Imported and pushed by dockerd, then its config corrected (see
# build_debian_python): a new config blob and manifest under the same tag.
ensure_arm64_python() {
    local recipe=$1 ref=$MULTI_PYTHON_IMAGE-arm64 path=${MULTI_PYTHON_IMAGE#*/} t0=$SECONDS
    local repo arch config_digest
    repo=${path%:*}
    arch=$(skopeo inspect --tls-verify=false --config "docker://$ref" 2>/dev/null \
        | jq -r '.architecture // empty' 2>/dev/null || true)
    if ((!force)) && [[ $(registry_label "$ref") == "$recipe" && $arch == arm64 ]]; then
        log "$ref: up to date (skipped)"
        return
    fi
    log "$ref: building"
    build_debian_python "$ref" "$recipe" arm64
    run "$DOCKER" push "$ref"
    # dockerd's copy keeps the wrong config: only the registry's is used.
    run "$DOCKER" rmi "$ref"
    registry_manifest "$ref" "$TMP/arm-pushed.json" || die "$ref: pushed, but the registry does not show it"
    config_digest=$(jq -r .config.digest "$TMP/arm-pushed.json")
    run curl -fsS --noproxy '*' -m 30 -o "$TMP/arm-config.json" \
        "http://127.0.0.1:$PLAIN_PORT/v2/$repo/blobs/$config_digest"
    jq -c '.architecture = "arm64" | .variant = "v8" | .os = "linux"' \
        "$TMP/arm-config.json" >"$TMP/arm-config-fixed.json"
    config_digest=$(registry_blob_upload "$repo" "$TMP/arm-config-fixed.json")
    jq -c --arg d "$config_digest" --argjson s "$(stat -c %s "$TMP/arm-config-fixed.json")" \
        '.config.digest = $d | .config.size = $s' "$TMP/arm-pushed.json" >"$TMP/arm-manifest.json"
    run curl -fsS --noproxy '*' -m 30 -X PUT \
        -H "Content-Type: $(jq -r .mediaType "$TMP/arm-manifest.json")" \
        --data-binary "@$TMP/arm-manifest.json" \
        "http://127.0.0.1:$PLAIN_PORT/v2/$repo/manifests/${ref##*:}"
    arch=$(skopeo inspect --tls-verify=false --config "docker://$ref" | jq -r .architecture)
    [[ $arch == arm64 && $(registry_label "$ref") == "$recipe" ]] \
        || die "$ref: the registry shows architecture $arch after the correction"
    log "$ref: done in $((SECONDS - t0))s"
}

# registry_manifest REF FILE: the manifest REF names in the plain registry, byte for byte, into
# FILE (its digest is the sha256 of those bytes); fails when there is none.
registry_manifest() {
    local ref=$1 out=$2 path=${1#*/}
    curl -fs --noproxy '*' -m 30 -o "$out" \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://127.0.0.1:$PLAIN_PORT/v2/${path%:*}/manifests/${path##*:}"
}

# ensure_multi_python: $MULTI_PYTHON_IMAGE as an index of its -amd64 tag (debian-python's
# manifest, copied with its digest) and its -arm64 tag (built by ensure), pushed last and
# only when it differs from what the registry has.
ensure_multi_python() {
    local index=$MULTI_PYTHON_IMAGE amd=$MULTI_PYTHON_IMAGE-amd64 arm=$MULTI_PYTHON_IMAGE-arm64
    local path=${MULTI_PYTHON_IMAGE#*/} t0=$SECONDS a_type r_type
    registry_manifest "$BASE_PYTHON_IMAGE" "$TMP/base.json" || die "$BASE_PYTHON_IMAGE is not in the registry"
    if ! registry_manifest "$amd" "$TMP/amd.json" || ! cmp -s "$TMP/base.json" "$TMP/amd.json"; then
        log "$amd: copying $BASE_PYTHON_IMAGE"
        run skopeo copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
            "docker://$BASE_PYTHON_IMAGE" "docker://$amd"
        registry_manifest "$amd" "$TMP/amd.json" || die "$amd: copied, but the registry does not show it"
    fi
    registry_manifest "$arm" "$TMP/arm.json" || die "$arm is not in the registry"
    a_type=$(jq -r .mediaType "$TMP/amd.json")
    r_type=$(jq -r .mediaType "$TMP/arm.json")
    jq -nc \
        --arg amd_type "$a_type" --arg amd_digest "sha256:$(sha256sum <"$TMP/amd.json" | cut -d' ' -f1)" \
        --argjson amd_size "$(stat -c %s "$TMP/amd.json")" \
        --arg arm_type "$r_type" --arg arm_digest "sha256:$(sha256sum <"$TMP/arm.json" | cut -d' ' -f1)" \
        --argjson arm_size "$(stat -c %s "$TMP/arm.json")" \
        '{schemaVersion: 2,
          mediaType: "application/vnd.docker.distribution.manifest.list.v2+json",
          manifests: [
            {mediaType: $amd_type, digest: $amd_digest, size: $amd_size,
             platform: {architecture: "amd64", os: "linux"}},
            {mediaType: $arm_type, digest: $arm_digest, size: $arm_size,
             platform: {architecture: "arm64", os: "linux", variant: "v8"}}
          ]}' >"$TMP/index.json"
    if registry_manifest "$index" "$TMP/current.json" && cmp -s "$TMP/index.json" "$TMP/current.json"; then
        log "$index: up to date (skipped)"
        return
    fi
    run curl -fsS --noproxy '*' -m 30 -X PUT \
        -H 'Content-Type: application/vnd.docker.distribution.manifest.list.v2+json' \
        --data-binary "@$TMP/index.json" \
        "http://127.0.0.1:$PLAIN_PORT/v2/${path%:*}/manifests/${path##*:}"
    log "$index: index of linux/amd64 + linux/arm64 pushed in $((SECONDS - t0))s"
}

# ------------------------------------------------------------- uv:0.5
uv_wheel() {
    local arch plat dir=$E2E_CACHE/uv whl
    arch=$(uname -m)
    case $arch in
        x86_64 | aarch64) plat=musllinux_1_1_$arch ;;
        *) die "no uv wheel for architecture $arch" ;;
    esac
    mkdir -p "$dir"
    whl=$(compgen -G "$dir/uv-$UV_VERSION-*-$plat.whl" | head -n1 || true)
    if [[ -z $whl ]]; then
        log "downloading the uv $UV_VERSION wheel ($plat) from PyPI; cached in $dir"
        # The musllinux wheel carries static binaries, like the ghcr.io/astral-sh/uv image.
        run /usr/bin/python3 -m pip download --disable-pip-version-check --no-deps \
            --only-binary=:all: --platform "$plat" -d "$dir" "uv==$UV_VERSION"
        whl=$(compgen -G "$dir/uv-$UV_VERSION-*-$plat.whl" | head -n1 || true)
        [[ -n $whl ]] || die "pip did not leave a uv $UV_VERSION $plat wheel in $dir"
    fi
    echo "$whl"
}

build_uv() {
    local ref=$1 recipe=$2 whl root=$TMP/uv-root
    whl=$(uv_wheel)
    mkdir -p "$root/io"
    run /usr/bin/python3 - "$whl" "$root" <<'EOF'
import os, sys, zipfile
whl, root = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in ("uv", "uvx"):
        member = next(n for n in z.namelist() if n.endswith(".data/scripts/" + name))
        with z.open(member) as src, open(os.path.join(root, name), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(root, name), 0o755)
EOF
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c uv uvx io \
        | "$DOCKER" import \
            --change "LABEL $LABEL_KEY=$recipe" \
            --change 'WORKDIR /io' \
            --change 'ENTRYPOINT ["/uv"]' \
            - "$ref" >>"$LOG" 2>&1 || die "docker import of $ref failed (log: $LOG)"
    rm -rf "$root"
}

# ------------------------------------------------------------- busybox:stable
build_busybox() {
    local ref=$1 recipe=$2 root=$TMP/bb-root a
    mkdir -p "$root"/{bin,etc,root,tmp,var/tmp}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    for a in $("$root/bin/busybox" --list); do
        [[ -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . \
        | "$DOCKER" import \
            --change "ENV PATH=$STD_PATH" \
            --change "LABEL $LABEL_KEY=$recipe" \
            --change 'CMD ["sh"]' \
            - "$ref" >>"$LOG" 2>&1 || die "docker import of $ref failed (log: $LOG)"
    rm -rf "$root"
}

# ------------------------------------------------------------- envd-python:bookworm
# The envd builder's base: envd's install.python_packages runs `python -m pip install` in the
# base's system Python, so it needs a `python` command and a pip that may install there
# (Debian 12's is "externally managed", PEP 668). In the TLS registry: envd resolves the base
# over HTTPS itself, while dockerd pulls localhost registries over plain HTTP.
build_envd_python() {
    local ref=$1 recipe=$2
    printf 'FROM %s\nRUN ln -s python3 /usr/bin/python\nENV PIP_BREAK_SYSTEM_PACKAGES=1\nLABEL %s=%s\n' \
        "$BASE_PYTHON_IMAGE" "$LABEL_KEY" "$recipe" >"$TMP/envd-python.Dockerfile"
    run "$DOCKER" build -t "$ref" -f "$TMP/envd-python.Dockerfile" "$TMP/empty-context"
}

# ------------------------------------------------------------- main
t_all=$SECONDS
ca_hash=$(sha256sum "$HOST_CA_BUNDLE" | cut -c1-12)
bb_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
[[ -x /bin/busybox ]] || die "/bin/busybox missing: run scripts/e2e/install.sh"

ensure "debian-python-v2-ca-$ca_hash" build_debian_python "$BASE_PYTHON_IMAGE"
ensure "uv-$UV_VERSION-v1" build_uv "$UV_IMAGE" "localhost:$PLAIN_PORT/uv:$UV_VERSION"
ensure "busybox-${bb_version//[^A-Za-z0-9.+-]/_}-v1" build_busybox "$BUSYBOX_IMAGE"
if ((example)); then
    log "the example's base images ready in $((SECONDS - t_all))s (no arm64 base, no envd: --example)"
    exit 0
fi
mkdir -p "$TMP/empty-context"
ensure "envd-python-v1-ca-$ca_hash" build_envd_python "$ENVD_BASE_IMAGE"
# arm64 needs emulation: binfmt_misc mounted, qemu-aarch64 registered (F flag).
run "$(dirname "$0")/binfmt.sh"
ensure_arm64_python "debian-python-arm64-v2-ca-$ca_hash"
ensure_multi_python
run "$(dirname "$0")/envd.sh"
log "all base images ready in $((SECONDS - t_all))s"
