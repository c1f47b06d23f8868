#!/usr/bin/env bash
# Compares the training speed of the Go trainer with PyTorch's on this
# machine, at the notebook's batch of 64, for each model:
#
#   - Go, pure Go (gonum's BLAS, the kernels' Go references, CGO_ENABLED=0):
#                                BenchmarkStep of ./trainer
#   - Go, OpenBLAS:              the same with -tags openblas
#   - PyTorch:                   bench/torch_train.py --model M --steps N --json
#
# and prints samples/s for each, the ratio Go/PyTorch, the GFLOPS of a Go
# step's matrix products and their share of this machine's fp32 peak (a
# large sgemm), the CPU time of a Go step and its allocations, and the load
# average before and after. All runs use THREADS cores (GOMAXPROCS for Go,
# torch.set_num_threads for PyTorch).
#
# On a shared virtual machine both the peak and a step's speed move by 20%
# or more from minute to minute, with the neighbours' load. So the script
# measures in ROUNDS rounds, each the peak and then every Go run right after
# it, and prints medians and ranges over the rounds; the share of the peak
# is taken within each round, and also as the fastest round's GFLOPS over
# the highest peak (best/peak), each the least disturbed measure of its
# kind. Timings on a busy machine mean little: check the load average
# printed.
#
#   bench/go_vs_torch.sh                       # both models, 200 steps
#   MODELS=conv STEPS=100 bench/go_vs_torch.sh
#   THREADS=1 bench/go_vs_torch.sh             # one core each
#   ROUNDS=5 BUILDS=openblas bench/go_vs_torch.sh
#   BASE=HEAD~3 bench/go_vs_torch.sh           # also the trainer of that commit, in the same rounds
#
# Environment: MODELS (classic conv), STEPS (200), ROUNDS (3), THREADS (2), BASE (a git
# revision whose trainer runs beside this one's, as base-BUILD: before and after in one run), PYTHON
# (/usr/bin/python3, which has torch), BUILDS (gonum openblas), GO (go),
# LATENT_DATA (the MNIST folder, for PyTorch and for Go's batches).
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${MODELS:-"classic conv"}
STEPS=${STEPS:-200}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
BUILDS=${BUILDS:-"gonum openblas"}
GO=${GO:-go}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "load average before: $(load)"

build() { # build BUILD SRC OUT
	if [[ $1 == gonum ]]; then
		(cd "$2" && CGO_ENABLED=0 "$GO" test -c -o "$3" ./trainer)
	else
		(cd "$2" && "$GO" test -c -tags "$1" -o "$3" ./trainer)
	fi
}
for b in $BUILDS; do
	build "$b" . "$tmp/$b.test"
done
if [[ -n ${BASE:-} ]]; then
	git worktree add -q --detach "$tmp/base" "$BASE"
	trap 'git worktree remove --force "$tmp/base"; rm -rf "$tmp"' EXIT
	echo "base: $(git -C "$tmp/base" log -1 --format='%h %s' | cut -c1-100)"
	for b in $BUILDS; do
		build "$b" "$tmp/base" "$tmp/base-$b.test"
	done
	for b in $BUILDS; do BUILDS+=" base-$b"; done
fi

# peak_gflops prints the fp32 peak: the GFLOPS of a large square sgemm
# through the trainer's gemm on the BLAS (not the trainer's own kernel,
# which is made for batch 64), with the fastest BLAS built.
peak_build=openblas
[[ " $BUILDS " == *" openblas "* ]] || peak_build=${BUILDS%% *}
peak_gflops() {
	(cd trainer && GOMAXPROCS=$THREADS "$tmp/$peak_build.test" -test.run '^$' \
		-test.bench '^BenchmarkGemm$/^peak$/^square/^blas$' -test.benchtime 3s 2>&1 |
		awk '/^BenchmarkGemm\/peak\/.*\/blas/ { for (i = 1; i <= NF; i++) if ($(i+1) == "GFLOPS") print $i }')
}

# median reads numbers, one a line, and prints "median (min-max)" with the
# printf format $1 for each.
median() {
	grep -v '^$' | sort -g | awk -v f="$1" '{ a[NR] = $1 } END {
		m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		if (NR == 1) printf f, m; else printf f " (" f "-" f ")", m, a[1], a[NR]
	}'
}

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

declare -A sps=() share=() cpu=() allocs=() gflops=() blas=()
peaks=""
for r in $(seq "$ROUNDS"); do
	peak=$(peak_gflops)
	peaks+=" $peak"
	for m in $MODELS; do
		for b in $BUILDS; do
			read -r s c a g bl < <(go_bench "$b" "$m")
			sps[$m/$b]+="$s"$'\n'
			gflops[$m/$b]+="$g"$'\n'
			cpu[$m/$b]+="$c"$'\n'
			share[$m/$b]+="$(awk -v g="$g" -v p="$peak" 'BEGIN { print 100 * g / p }')"$'\n'
			allocs[$m/$b]=$a blas[$m/$b]=$bl
		done
	done
done
peak_best=$(tr ' ' '\n' <<<"$peaks" | grep -v '^$' | sort -g | tail -1)
echo "fp32 peak ($peak_build sgemm 1536x1536x1536, $THREADS threads), each round: $peaks GFLOPS"
echo "Go: $STEPS steps a run, $ROUNDS rounds; medians over the rounds (min-max); of-peak: share of peak within each round;"
echo "best/peak: the fastest round's GFLOPS over the highest peak, both as free of the neighbours' load as the run got"

printf '\n%-8s %-9s %24s %8s %20s %24s %9s %16s %8s  %s\n' model trainer samples/s vs-torch GFLOPS of-peak best/peak cpu-ms/step allocs BLAS
for m in $MODELS; do
	torch=$(torch_bench "$m")
	for b in $BUILDS; do
		med=$(median '%.0f' <<<"${sps[$m/$b]}" | cut -d' ' -f1)
		best=$(grep -v '^$' <<<"${gflops[$m/$b]}" | sort -g | tail -1)
		printf '%-8s %-9s %24s %7.2fx %20s %24s %8.1f%% %16s %8s  %s\n' "$m" "go/$b" \
			"$(median '%.0f' <<<"${sps[$m/$b]}")" \
			"$(awk -v g="$med" -v t="$torch" 'BEGIN { print g / t }')" \
			"$(median '%.1f' <<<"${gflops[$m/$b]}")" \
			"$(median '%.1f%%' <<<"${share[$m/$b]}")" \
			"$(awk -v g="$best" -v p="$peak_best" 'BEGIN { print 100 * g / p }')" \
			"$(median '%.2f' <<<"${cpu[$m/$b]}")" "${allocs[$m/$b]}" "${blas[$m/$b]}"
	done
	printf '%-8s %-9s %24.1f %7.2fx %20s %24s %9s %16s %8s  %s\n' "$m" pytorch "$torch" 1 - - - - - "torch --threads $THREADS"
done
echo
echo "load average after: $(load)"
