#!/usr/bin/env bash
# Compares the training speed of the Go trainer with PyTorch's on this
# machine, at the notebook's batch of 64, for each model:
#
#   - Go, pure-Go BLAS (gonum):  BenchmarkStep of ./trainer
#   - Go, OpenBLAS:              the same with -tags openblas
#   - PyTorch:                   bench/torch_train.py --model M --steps N --json
#
# and prints samples/s for each, the ratio Go/PyTorch, the GFLOPS of a Go
# step's matrix products and their share of this machine's fp32 peak (a
# large sgemm, measured first), the CPU time of a Go step and its
# allocations, and the load average before and after. All runs
# use THREADS cores (GOMAXPROCS for Go, torch.set_num_threads for PyTorch).
# Timings on a busy machine mean little: check the load average printed.
#
#   bench/go_vs_torch.sh                       # both models, 200 steps
#   MODELS=conv STEPS=100 bench/go_vs_torch.sh
#   THREADS=1 bench/go_vs_torch.sh             # one core each
#
# Environment: MODELS (classic conv), STEPS (200), THREADS (2), PYTHON
# (/usr/bin/python3, which has torch), BUILDS (gonum openblas), GO (go),
# LATENT_DATA (the MNIST folder, for PyTorch and for Go's batches).
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${MODELS:-"classic conv"}
STEPS=${STEPS:-200}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
BUILDS=${BUILDS:-"gonum openblas"}
GO=${GO:-go}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "load average before: $(load)"

for b in $BUILDS; do
	tags=()
	[[ $b == gonum ]] || tags=(-tags "$b")
	"$GO" test -c "${tags[@]}" -o "$tmp/$b.test" ./trainer
done

# The fp32 peak: the GFLOPS of a large square sgemm through the trainer's
# gemm, with the fastest BLAS built.
peak_build=openblas
[[ " $BUILDS " == *" openblas "* ]] || peak_build=${BUILDS%% *}
peak=$(cd trainer && GOMAXPROCS=$THREADS "$tmp/$peak_build.test" -test.run '^$' \
	-test.bench '^BenchmarkGemm/peak' -test.benchtime 3s 2>&1 |
	awk '/^BenchmarkGemm\/peak/ { for (i = 1; i <= NF; i++) if ($(i+1) == "GFLOPS") print $i }')
echo "fp32 peak ($peak_build sgemm 1536x1536x1536, $THREADS threads): $peak GFLOPS"

# go_bench BUILD MODEL prints "samples/s cpu-ms allocs GFLOPS BLAS".
go_bench() {
	local out
	out=$(cd trainer && GOMAXPROCS=$THREADS "$tmp/$1.test" -test.run '^$' -test.v \
		-test.bench "^BenchmarkStep/$2\$" -test.benchtime "${STEPS}x" 2>&1) || {
		echo "$out" >&2
		return 1
	}
	local blas
	blas=$(sed -n 's/.*BLAS: \(.*\); data:.*/\1/p' <<<"$out" | head -1)
	awk -v blas="$blas" '/^BenchmarkStep\// {
		for (i = 1; i <= NF; i++) {
			if ($(i+1) == "samples/s") sps = $i
			if ($(i+1) == "cpu-ms/op") cpu = $i
			if ($(i+1) == "allocs/op") allocs = $i
			if ($(i+1) == "GFLOPS") gflops = $i
		}
	} END { printf "%s %s %s %s %s\n", sps, cpu, allocs, gflops, blas }' <<<"$out"
}

# torch_bench MODEL prints samples/s.
torch_bench() {
	"$PYTHON" bench/torch_train.py --model "$1" --steps "$STEPS" --threads "$THREADS" --json |
		"$PYTHON" -c 'import json, sys; print("%.1f" % json.loads(sys.stdin.read())["samples_per_sec"])'
}

printf '\n%-8s %-9s %12s %10s %8s %8s %12s %10s  %s\n' model trainer samples/s vs-torch GFLOPS of-peak cpu-ms/step allocs/step BLAS
for m in $MODELS; do
	declare -A sps=() cpu=() allocs=() gflops=() blas=()
	for b in $BUILDS; do
		read -r sps[$b] cpu[$b] allocs[$b] gflops[$b] blas[$b] < <(go_bench "$b" "$m")
	done
	torch=$(torch_bench "$m")
	for b in $BUILDS; do
		printf '%-8s %-9s %12.1f %9.2fx %8.1f %7.1f%% %12.2f %10s  %s\n' "$m" "go/$b" "${sps[$b]}" \
			"$(awk -v g="${sps[$b]}" -v t="$torch" 'BEGIN { print g / t }')" "${gflops[$b]}" \
			"$(awk -v g="${gflops[$b]}" -v p="$peak" 'BEGIN { print 100 * g / p }')" "${cpu[$b]}" "${allocs[$b]}" "${blas[$b]}"
	done
	printf '%-8s %-9s %12.1f %9.2fx %8s %8s %12s %10s  %s\n' "$m" pytorch "$torch" 1 - - - - "torch --threads $THREADS"
done
echo
echo "load average after: $(load)"
