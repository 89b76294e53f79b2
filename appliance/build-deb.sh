#!/usr/bin/env bash
# Build the Debian package `tandem` (cargo-deb, [package.metadata.deb] in
# crates/tandemd/Cargo.toml): a release build of the binaries, then their man pages
# (gzip -9n) and shell completions generated from them into target/release/share by
# package-docs.sh (the package's assets; never committed, so they cannot drift from the
# binaries), then the package.
#
# Usage: appliance/build-deb.sh [extra cargo-deb arguments, e.g. --output DIR]
# Needs cargo-deb (`cargo install cargo-deb --locked`; .ci/run --deps-only does it).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $target ]] || { echo "build-deb.sh: cannot find cargo's target directory" >&2; exit 1; }

cargo build --release --locked --workspace --bins
appliance/package-docs.sh "$target/release" "$target/release/share"
cargo deb -p tandemd --no-build --locked "$@"
