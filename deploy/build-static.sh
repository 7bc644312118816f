#!/bin/sh
# Fully static release binaries of `tropa-relay` and `tropa` (musl libc),
# with their SHA-256 sums, for operators' VPSes and phones:
#
#   deploy/build-static.sh [TARGET]      # default x86_64-unknown-linux-musl
#
# Output in dist/ (or $OUT): tropa-relay-TARGET, tropa-TARGET and
# SHA256SUMS-TARGET. The script refuses to finish if a binary is not static
# or does not run. Needs the Rust target (added with rustup if missing) and,
# for x86-64, musl-gcc (Debian: apt-get install musl-tools) for ring's C code.
# Other targets (aarch64-unknown-linux-musl for Termux phones and ARM VPSes)
# are cross-compiled with cargo-zigbuild: `pip install ziglang` and
# `cargo install cargo-zigbuild`. A binary for another architecture is run
# for its --version check only where qemu-user can run it.
set -eu
target=${1:-x86_64-unknown-linux-musl}
out=${OUT:-dist}
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
case "$target" in
x86_64-unknown-linux-musl)
    command -v musl-gcc >/dev/null || {
        echo "build-static: needs musl-gcc (Debian: apt-get install musl-tools)" >&2
        exit 1
    }
    export CC_x86_64_unknown_linux_musl=musl-gcc
    build="cargo build"
    ;;
*)
    command -v cargo-zigbuild >/dev/null || {
        echo "build-static: $target needs cargo-zigbuild and zig (pip install ziglang; cargo install cargo-zigbuild)" >&2
        exit 1
    }
    build="cargo zigbuild"
    ;;
esac
$build --release --locked --target "$target" --bin tropa-relay --bin tropa
mkdir -p "$out"
for b in tropa-relay tropa; do
    cp "target/$target/release/$b" "$out/$b-$target"
    if file "$out/$b-$target" | grep -q "dynamically linked"; then
        echo "build-static: $b is dynamically linked" >&2
        exit 1
    fi
    if [ "${target%%-*}" = "$(uname -m)" ]; then
        "$out/$b-$target" --version
    elif command -v "qemu-${target%%-*}" >/dev/null; then
        "qemu-${target%%-*}" "$out/$b-$target" --version
    else
        echo "build-static: cannot run $b for ${target%%-*} here (no qemu-${target%%-*}); not run"
    fi
done
(cd "$out" && sha256sum "tropa-relay-$target" "tropa-$target" >"SHA256SUMS-$target")
ls -l "$out"/*"$target"*
cat "$out/SHA256SUMS-$target"
