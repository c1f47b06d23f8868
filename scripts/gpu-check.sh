#!/usr/bin/env bash
# gpu-check.sh: the one prepared GPU check. On a machine with an NVIDIA GPU,
# it encodes, decodes and samples both of the notebook's models on CUDA and
# on the CPU, in one process, through the GPU build of ONNX Runtime; it
# compares the outputs (codes within 1e-4) and prints images/s for batch
# encoding on each device and the latency of one image (bench/gpucheck).
#
# Everything it needs comes from the environment, so it runs where the
# files were copied by hand:
#
#   ONNXRUNTIME_SHARED_LIBRARY_PATH  the GPU build's libonnxruntime.so, with
#                                    libonnxruntime_providers_{shared,cuda}.so
#                                    beside it (default: make setup-cuda's)
#   LD_LIBRARY_PATH                  where CUDA 13, cuDNN 9 and libcuda.so.1 are,
#                                    if not in the system's search path
#   LATENT_DATA                      MNIST's folder (default ../shared/datasets/mnist)
#   LATENT, GPUCHECK                 the latent and gpucheck binaries (default
#                                    bin/latent and bin/gpucheck, built when Go is there)
#   RUNS                             exported runs to check (default: two small
#                                    ones, classic and conv, trained here on the CPU)
#
# It exits 1 when CUDA does not start or the devices disagree.
set -euo pipefail
cd "$(dirname "$0")/.."

export LATENT_DATA="${LATENT_DATA:-$(realpath ../shared/datasets/mnist 2>/dev/null || echo data/mnist)}"
LATENT="${LATENT:-bin/latent}"
GPUCHECK="${GPUCHECK:-bin/gpucheck}"
if command -v go >/dev/null 2>&1; then
	[[ -x "$LATENT" ]] || go build -tags openblas -o "$LATENT" ./cmd/latent
	[[ -x "$GPUCHECK" ]] || go build -o "$GPUCHECK" ./bench/gpucheck
fi
for b in "$LATENT" "$GPUCHECK"; do
	[[ -x "$b" ]] || { echo "gpu-check.sh: $b is missing: build it (go build) or copy it here" >&2; exit 1; }
done

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
"$LATENT" version

if [[ -z "${RUNS:-}" ]]; then
	work="$(mktemp -d "${TMPDIR:-/tmp}/latent-gpu-check.XXXXXX")"
	trap 'rm -rf "$work"' EXIT
	RUNS=""
	for m in classic conv; do
		"$LATENT" train --model "$m" --epochs 1 --limit 6400 --out "$work/$m" --quiet >/dev/null
		"$LATENT" export "$work/$m" --quiet >/dev/null
		RUNS="$RUNS $work/$m"
	done
fi

echo "== CUDA against CPU"
# shellcheck disable=SC2086
"$GPUCHECK" -data "$LATENT_DATA" $RUNS
