#!/usr/bin/env bash
# The package's generated assets: man pages and shell completions written by the
# binaries in BIN_DIR (`generate-docs`) under SHARE_DIR (the layout of /usr/share), with
# the man pages gzip-compressed as Debian policy wants (`gzip -9n`: best compression, no
# name or time stamp, so the same page always gives the same bytes). build-deb.sh runs
# it; tests/packaging/debian_package.rs runs it on the debug binaries. install.sh installs the
# pages uncompressed (man reads both).
#
# Usage: appliance/package-docs.sh BIN_DIR SHARE_DIR

set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 BIN_DIR SHARE_DIR" >&2; exit 2; }
bin_dir=$1 share=$2

rm -rf "$share"
for bin in tandemd tandemctl; do
    "$bin_dir/$bin" generate-docs "$share" \
        || { echo "package-docs.sh: $bin_dir/$bin generate-docs failed" >&2; exit 1; }
done
pages=("$share"/man/man1/*.1)
[[ -e ${pages[0]} ]] || { echo "package-docs.sh: no man page under $share/man/man1" >&2; exit 1; }
gzip -9n "${pages[@]}"
