#!/usr/bin/env bash
# Checks that a change to the trainer leaves what it learns unchanged: trains
# each model for EPOCHS epochs with each seed, with
#
#   - the Go trainer of this checkout (OpenBLAS build),
#   - the Go trainer of git revision BEFORE, if set (the "before" of a change),
#   - PyTorch started from the same initial weights as Go's (the Go trainer's
#     seed-S weights, from latent train --epochs 0), so that only the
#     arithmetic differs,
#   - PyTorch from its own seed-S initialisation, if TORCH_OWN=1,
#
# and prints every final test MSE and each one's difference from this
# checkout's. The spread across seeds shows how much a run moves for reasons
# that have nothing to do with the change.
#
#   bench/learning.sh                                   # seed 0, both models
#   SEEDS="0 1 2" BEFORE=70a8815 bench/learning.sh
#
# Environment: MODELS (classic conv), SEEDS (0), EPOCHS (5), BEFORE (unset),
# TORCH_OWN (0), THREADS (2), PYTHON (/usr/bin/python3), GO (go),
# LATENT_DATA (the MNIST folder).
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${MODELS:-"classic conv"}
SEEDS=${SEEDS:-0}
EPOCHS=${EPOCHS:-5}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
GO=${GO:-go}
export GOMAXPROCS=$THREADS
if [[ -z ${LATENT_DATA:-} && -d ../shared/datasets/mnist ]]; then
	LATENT_DATA=$(cd ../shared/datasets/mnist && pwd)
	export LATENT_DATA
fi

tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/before-src" 2>/dev/null || true; rm -rf "$tmp"' EXIT

"$GO" build -tags openblas -o "$tmp/latent" ./cmd/latent
if [[ -n ${BEFORE:-} ]]; then
	git worktree add --detach -q "$tmp/before-src" "$BEFORE"
	(cd "$tmp/before-src" && "$GO" build -tags openblas -o "$tmp/latent-before" ./cmd/latent)
fi

# go_mse BINARY MODEL SEED prints the final test MSE of a Go run.
go_mse() {
	"$1" train --model "$2" --seed "$3" --epochs "$EPOCHS" --out "$tmp/run" --force 2>"$tmp/stderr" |
		sed -n 's/.*test MSE \([0-9.]*\).*/\1/p' || { cat "$tmp/stderr" >&2; return 1; }
}

# torch_mse MODEL SEED [INIT] prints the final test MSE of a PyTorch run.
torch_mse() {
	local init=()
	[[ -z ${3:-} ]] || init=(--init "$3")
	"$PYTHON" bench/torch_train.py --model "$1" --seed "$2" --epochs "$EPOCHS" --threads "$THREADS" "${init[@]}" --json 2>"$tmp/stderr" |
		"$PYTHON" -c 'import json, sys; print("%.6f" % json.loads(sys.stdin.read())["test_mse"])'
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f%%", 100 * (a - b) / b }'; }

echo "machine: $(nproc) CPUs; $EPOCHS epochs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %4s  %-28s %10s %9s\n' model seed trainer "test MSE" "vs Go"
for m in $MODELS; do
	for s in $SEEDS; do
		g=$(go_mse "$tmp/latent" "$m" "$s")
		printf '%-8s %4s  %-28s %10s %9s\n' "$m" "$s" "go (this checkout)" "$g" -
		if [[ -n ${BEFORE:-} ]]; then
			b=$(go_mse "$tmp/latent-before" "$m" "$s")
			printf '%-8s %4s  %-28s %10s %9s\n' "$m" "$s" "go ($BEFORE)" "$b" "$(pct "$b" "$g")"
		fi
		"$tmp/latent" train --model "$m" --seed "$s" --epochs 0 --out "$tmp/init" --force >/dev/null 2>&1
		t=$(torch_mse "$m" "$s" "$tmp/init/model.safetensors")
		printf '%-8s %4s  %-28s %10s %9s\n' "$m" "$s" "pytorch (Go's initial weights)" "$t" "$(pct "$t" "$g")"
		if [[ ${TORCH_OWN:-0} == 1 ]]; then
			o=$(torch_mse "$m" "$s")
			printf '%-8s %4s  %-28s %10s %9s\n' "$m" "$s" "pytorch (its own init)" "$o" "$(pct "$o" "$g")"
		fi
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
