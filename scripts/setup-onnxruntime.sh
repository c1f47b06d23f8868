#!/usr/bin/env bash
# setup-onnxruntime.sh installs the ONNX Runtime shared library that latent's
# inference package loads at run time.
#
# It takes libonnxruntime 1.24.3 for linux-x64 out of the onnxruntime-node
# package of the npm registry ("npm pack" only downloads the tarball: it runs
# no install scripts) and puts it at
#
#   ${LATENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/latent}/onnxruntime-1.24.3/libonnxruntime.so
#
# which is where the inference package looks when ONNXRUNTIME_SHARED_LIBRARY_PATH
# is not set. It does nothing if the library is already there, and it writes
# the file atomically (extract to a temporary file, then rename). On success it
# prints the path of the library.
set -euo pipefail

version=1.24.3
cache="${LATENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/latent}"
dir="$cache/onnxruntime-$version"
lib="$dir/libonnxruntime.so"

if [[ -s "$lib" ]]; then
	echo "$lib"
	exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*)
	echo "setup-onnxruntime.sh: only linux-x64 is supported, not $(uname -s)/$(uname -m)" >&2
	exit 1
	;;
esac

if ! command -v npm >/dev/null 2>&1; then
	echo "setup-onnxruntime.sh: npm is needed to fetch onnxruntime-node $version (apt-get install npm)" >&2
	exit 1
fi

mkdir -p "$dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/latent-ort.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "setup-onnxruntime.sh: fetching onnxruntime-node@$version from the npm registry" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tgz="$tmp/onnxruntime-node-$version.tgz"
if [[ ! -f "$tgz" ]]; then
	echo "setup-onnxruntime.sh: npm pack did not produce $tgz" >&2
	exit 1
fi

member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
tar -xzf "$tgz" -C "$tmp" "$member"
if [[ ! -s "$tmp/$member" ]]; then
	echo "setup-onnxruntime.sh: $member missing from the onnxruntime-node package" >&2
	exit 1
fi

# Move into the cache folder in two steps: a copy next to the target (same
# file system), then an atomic rename.
part="$(mktemp "$dir/.libonnxruntime.so.XXXXXX")"
cp "$tmp/$member" "$part"
chmod 0755 "$part"
mv -f "$part" "$lib"
echo "$lib"
