#!/usr/bin/env bash
# Local stand-ins for the two base images deploy/docker/Dockerfile names, for
# machines that reach no image registry (tests/run.sh calls this before
# tests/container.rs builds the image with `--pull=never`):
#
#   gcr.io/distroless/cc-debian12:nonroot  Debian 12 minbase (debootstrap)
#       without a shell, with distroless's nonroot user (65532): glibc and
#       libgcc, as the real one.
#   docker.io/library/rust:1.95-slim-bookworm  Debian 12 minbase with gcc,
#       libc6-dev and ca-certificates (what rust:*-slim adds) and this
#       machine's own Rust toolchain at rust:*'s paths (RUSTUP_HOME,
#       CARGO_HOME, PATH); it must be 1.95. The machine's extra CA
#       certificates (/usr/local/share/ca-certificates) come along, so that
#       cargo reaches crates.io through the same egress as on the host.
#
# Images that exist already are kept. Needs root, debootstrap, podman and
# buildah (tests/run.sh installs them) and the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")"
export CONTAINERS_CONF="$PWD/containers.conf"

RUNTIME=gcr.io/distroless/cc-debian12:nonroot
BUILD=docker.io/library/rust:1.95-slim-bookworm
MINBASE=localhost/roomcast-stand-in/debian-minbase:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

have() { podman image exists "$1"; }
if have "$RUNTIME" && have "$BUILD"; then
    echo "stand-in base images present: $RUNTIME, $BUILD"
    exit 0
fi

work=$(mktemp -d /var/tmp/roomcast-stand-in.XXXXXX)
ctrs=()
cleanup() {
    for c in "${ctrs[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

if ! have "$MINBASE"; then
    echo "==> debootstrap --variant=minbase bookworm ($MIRROR)"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; exit 1; }
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
    tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$MINBASE" >/dev/null
    rm -rf "$work/rootfs"
fi

if ! have "$RUNTIME"; then
    echo "==> $RUNTIME (stand-in)"
    c=$(buildah from --pull=never "$MINBASE"); ctrs+=("$c")
    mnt=$(buildah mount "$c")
    # No shell, as in distroless: an image that needs one fails here too.
    rm -f "$mnt"/bin/sh "$mnt"/bin/bash "$mnt"/bin/dash "$mnt"/usr/bin/sh "$mnt"/usr/bin/bash "$mnt"/usr/bin/dash
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >>"$mnt/etc/passwd"
    echo 'nonroot:x:65532:' >>"$mnt/etc/group"
    install -d -o 65532 -g 65532 "$mnt/home/nonroot"
    buildah umount "$c" >/dev/null
    buildah config --cmd '' --user 65532:65532 --workingdir /home/nonroot "$c"
    buildah commit --quiet --format docker "$c" "$RUNTIME" >/dev/null
fi

if ! have "$BUILD"; then
    sysroot=$(rustc --print sysroot)
    version=$(rustc --version)
    case "$version" in
        "rustc 1.95."*) ;;
        *) echo "the stand-in for $BUILD needs Rust 1.95; this machine has $version" >&2; exit 1 ;;
    esac
    echo "==> $BUILD (stand-in: $version from $sysroot)"
    c=$(buildah from --pull=never "$MINBASE"); ctrs+=("$c")
    buildah run --network host "$c" -- sh -c \
        'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*'
    mnt=$(buildah mount "$c")
    # This machine's extra trust anchors (an egress proxy's CA, if any), so
    # cargo in the build stage reaches crates.io as cargo on the host does.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/"
        buildah run "$c" -- update-ca-certificates >/dev/null
    fi
    toolchain="$mnt/usr/local/rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu"
    mkdir -p "$toolchain" "$mnt/usr/local/cargo/bin"
    # The compiler, cargo and the standard library; not the 800 MB of docs.
    cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/libexec" "$toolchain/"
    for tool in "$toolchain"/bin/*; do
        ln -s "/usr/local/rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu/bin/$(basename "$tool")" \
            "$mnt/usr/local/cargo/bin/"
    done
    buildah umount "$c" >/dev/null
    buildah config \
        --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env RUST_VERSION=1.95.0 "$c"
    buildah commit --quiet --format docker "$c" "$BUILD" >/dev/null
    buildah run "$c" -- cargo --version
fi
echo "stand-in base images ready: $RUNTIME, $BUILD"
