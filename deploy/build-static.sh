#!/usr/bin/env bash
# Builds the two shipped executables, sriov-device-plugin and sriov, as
# static executables: the image has nothing else in it, and the CNI binary
# is copied onto nodes whose C library we do not know (RHEL 8, Ubuntu 20.04
# and Amazon Linux 2 have a glibc older than the one we build with).
#
#   build-static.sh [CARGO BUILD ARGS...]
#
# Prints the directory holding the executables. Extra arguments build more
# targets with the same flags into the same directory (the lab's helpers), so
# that nothing is compiled twice.
#
# Static glibc keeps two things that load shared objects at run time: NSS
# (user and host name lookups) and iconv's gconv modules. The link is checked
# so that neither binary reaches either from our code: lld records why it
# took each archive member, and a member that only libc itself asked for
# (gconv, for character sets we never convert) is never called.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
manifest=$here/../Cargo.toml
triple=$(rustc -vV | sed -n 's/^host: //p')
target=${CARGO_TARGET_DIR:-$here/../target}
out=$target/$triple/release
# --target keeps these flags off build scripts and proc macros, which must
# stay dynamic.
export RUSTFLAGS="-C target-feature=+crt-static"

build() { # package binary
    cargo rustc --release --quiet --manifest-path "$manifest" --target "$triple" \
        -p "$1" --bin "$2" -- -C link-arg=-Wl,--why-extract="$out/$2.why-extract"
    if ! file -L "$out/$2" | grep -q 'static'; then
        echo "build-static: $out/$2 is not statically linked" >&2
        exit 1
    fi
    # Columns: the object that referenced a symbol, the archive member taken
    # for it, the symbol.
    local reached
    reached=$(awk -F'\t' '
        NR > 1 && $2 ~ /libc\.a\((nsswitch|nss_[a-z_]*|getaddrinfo|gethstby(nm|ad)[a-z0-9_]*|getpw(nam|uid|ent)(_r)?|getgr(nam|gid|ent)(_r)?|getspnam(_r)?|initgroups)\.o\)/ { print $3; next }
        NR > 1 && $2 ~ /libc\.a\((dlopen|dl-libc)\.o\)/ && $1 !~ /libc\.a\(/ { print $3 }
    ' "$out/$2.why-extract")
    if [ -n "$reached" ]; then
        echo "build-static: $2 reaches NSS or dlopen through: $(echo $reached)" >&2
        exit 1
    fi
}
build sriov-device-plugin sriov-device-plugin
build sriov-cni sriov
if (($#)); then
    cargo build --release --quiet --manifest-path "$manifest" --target "$triple" "$@"
fi
echo "$out"
