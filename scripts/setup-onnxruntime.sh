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
#
# With --cuda it installs the GPU build instead, beside the CPU library and
# without touching it: ONNX Runtime 1.29.0 for linux-x64 with its CUDA and
# TensorRT providers, into
#
#   .../latent/onnxruntime-gpu-1.29.0/libonnxruntime.so (+ libonnxruntime_providers_*.so)
#
# from Microsoft's GitHub release when it can be reached, else from the npm
# packages com.github.asus4.onnxruntime and .linux-x64-gpu 0.4.9, a
# repackaging of the same release (MIT). It checks the library's version
# string before it moves the folder into place. The CUDA provider needs, at
# run time, CUDA 13 (libcudart.so.13, libcublas.so.13, libcublasLt.so.13,
# libcurand.so.10), cuDNN 9 and the NVIDIA driver: `latent version` says
# which of them this machine lacks.
set -euo pipefail

if [[ "${1:-}" == "--cuda" ]]; then
	gpu_version=1.29.0
	npm_version=0.4.9
	cache="${LATENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/latent}"
	dir="$cache/onnxruntime-gpu-$gpu_version"
	if [[ -s "$dir/libonnxruntime.so" && -s "$dir/libonnxruntime_providers_cuda.so" ]]; then
		echo "$dir/libonnxruntime.so"
		exit 0
	fi
	case "$(uname -s)/$(uname -m)" in
	Linux/x86_64) ;;
	*)
		echo "setup-onnxruntime.sh: the GPU build is for linux-x64 only, not $(uname -s)/$(uname -m)" >&2
		exit 1
		;;
	esac
	mkdir -p "$cache"
	stage="$(mktemp -d "$cache/.onnxruntime-gpu.XXXXXX")"
	tmp="$(mktemp -d "${TMPDIR:-/tmp}/latent-ort-gpu.XXXXXX")"
	trap 'rm -rf "$tmp" "$stage"' EXIT
	release="https://github.com/microsoft/onnxruntime/releases/download/v$gpu_version/onnxruntime-linux-x64-gpu-$gpu_version.tgz"
	if command -v curl >/dev/null 2>&1 && curl -fsSL --connect-timeout 10 --max-time 600 -o "$tmp/release.tgz" "$release" 2>/dev/null; then
		echo "setup-onnxruntime.sh: fetched $release" >&2
		tar -xzf "$tmp/release.tgz" -C "$tmp"
		lib="$tmp/onnxruntime-linux-x64-gpu-$gpu_version/lib"
		cp -L "$lib/libonnxruntime.so.$gpu_version" "$stage/libonnxruntime.so"
		cp -L "$lib"/libonnxruntime_providers_*.so "$stage/"
	else
		if ! command -v npm >/dev/null 2>&1; then
			echo "setup-onnxruntime.sh: GitHub cannot be reached and npm is missing (apt-get install npm)" >&2
			exit 1
		fi
		echo "setup-onnxruntime.sh: GitHub cannot be reached; fetching com.github.asus4.onnxruntime(.linux-x64-gpu)@$npm_version from the npm registry" >&2
		(cd "$tmp" && npm pack --silent "com.github.asus4.onnxruntime@$npm_version" "com.github.asus4.onnxruntime.linux-x64-gpu@$npm_version" >/dev/null)
		for pkg in com.github.asus4.onnxruntime com.github.asus4.onnxruntime.linux-x64-gpu; do
			mkdir -p "$tmp/$pkg"
			tar -xzf "$tmp/$pkg-$npm_version.tgz" -C "$tmp/$pkg" --wildcards 'package/Plugins/Linux/x64/*.so'
			cp "$tmp/$pkg"/package/Plugins/Linux/x64/*.so "$stage/"
		done
	fi
	for f in libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
		if [[ ! -s "$stage/$f" ]]; then
			echo "setup-onnxruntime.sh: $f missing from the GPU build" >&2
			exit 1
		fi
	done
	chmod 0755 "$stage"/*.so
	got="$(python3 - "$stage/libonnxruntime.so" <<'PY'
import ctypes, sys
class ApiBase(ctypes.Structure):
    _fields_ = [("GetApi", ctypes.c_void_p), ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p))]
lib = ctypes.CDLL(sys.argv[1])
lib.OrtGetApiBase.restype = ctypes.POINTER(ApiBase)
print(lib.OrtGetApiBase().contents.GetVersionString().decode())
PY
)"
	if [[ "$got" != "$gpu_version" ]]; then
		echo "setup-onnxruntime.sh: the GPU build says it is ONNX Runtime '$got', want $gpu_version" >&2
		exit 1
	fi
	chmod 0755 "$stage"
	rm -rf "$dir.old"
	[[ -d "$dir" ]] && mv "$dir" "$dir.old"
	mv "$stage" "$dir"
	rm -rf "$dir.old"
	echo "$dir/libonnxruntime.so"
	exit 0
fi

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
