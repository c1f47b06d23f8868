#!/usr/bin/env bash
# setup.sh installs what latent needs to build, test and run on a Debian
# machine: Debian packages (OpenBLAS, and the Python reference tools that the
# tests compare against), the ONNX Runtime library, and the Go modules.
#
# It is idempotent: packages already installed are not installed again.
# Run it as root, or as a user who may sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
	libopenblas-dev     # the fast BLAS of the trainer (build tag openblas)
	python3-torch       # the PyTorch reference of the tests and benchmarks
	libopenblas0-pthread
	libisal-dev         # ISA-L, the fast gzip inflater of the data readers (build tag isal)
	python3-numpy
	python3-onnx        # the ONNX checker of the exporter's tests
	dataset-fashion-mnist
	chromium            # the headless browser of the explorer's tests (package server)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Commands that may come from elsewhere than Debian (Node.js ships npm).
command -v gcc >/dev/null 2>&1 || missing+=(gcc) # cgo, for ONNX Runtime, OpenBLAS and ISA-L
command -v npm >/dev/null 2>&1 || missing+=(npm) # fetches the ONNX Runtime library
if ((${#missing[@]})); then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo="sudo"
	echo "setup: installing ${missing[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

scripts/setup-onnxruntime.sh >/dev/null

# The OpenAPI linter of the server's tests (npm, no install scripts).
redocly_version=2.77.0
redocly_dir=${XDG_CACHE_HOME:-$HOME/.cache}/latent/redocly
if [[ "$("$redocly_dir/node_modules/.bin/redocly" --version 2>/dev/null | tail -n 1)" != "$redocly_version" ]]; then
	echo "setup: installing @redocly/cli $redocly_version into $redocly_dir" >&2
	mkdir -p "$redocly_dir"
	npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$redocly_dir" "@redocly/cli@$redocly_version" >/dev/null
fi

go mod download
echo "setup: done" >&2
