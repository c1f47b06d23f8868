#!/bin/sh
# Benchmark ONNX Runtime inference (package inference) against PyTorch eval
# on MNIST's 60k training images; see bench/inference/main.go.
#   bench/inference.sh [--data DIR] [--threads N] [--out DIR] [--explore on|off|auto] ...
set -eu
cd "$(dirname "$0")/.."
exec go run ./bench/inference "$@"
