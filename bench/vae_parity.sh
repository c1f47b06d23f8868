#!/usr/bin/env bash
# The VAE against its PyTorch reference with the notebook's settings (5
# epochs, batch 64, Adam 1e-3, in order): the test negative ELBO per image
# (nats) and the test MSE through mu, for each model and seed, Go then
# PyTorch, and the gap. Each side draws its own initial weights and noise.
#
#   bench/vae_parity.sh                      # classic-vae and conv-vae, seeds 0 and 1
#   MODELS=classic-vae SEEDS=0 bench/vae_parity.sh
#
# Needs bin/latent (make build) and Debian's /usr/bin/python3 with torch.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-"classic-vae conv-vae"}
SEEDS=${SEEDS:-"0 1"}
EPOCHS=${EPOCHS:-5}
OUT=${OUT:-$(mktemp -d)}
export LATENT_DATA=${LATENT_DATA:-$(cd .. && pwd)/shared/datasets/mnist}
printf '%-12s %4s %12s %12s %7s %10s %10s\n' model seed go_nelbo torch_nelbo gap go_mse torch_mse
for m in $MODELS; do
	for s in $SEEDS; do
		run=$OUT/$m-$s
		bin/latent train --model "$m" --seed "$s" --epochs "$EPOCHS" --out "$run" --force --quiet >/dev/null 2>"$run.log" || { cat "$run.log"; exit 1; }
		/usr/bin/python3 bench/torch_train.py --model "$m" --seed "$s" --epochs "$EPOCHS" --json >"$run.torch.json" 2>>"$run.log"
		/usr/bin/python3 - "$run/metrics.jsonl" "$run.torch.json" "$m" "$s" <<'PY'
import json, sys
go = [json.loads(l) for l in open(sys.argv[1])][-1]
pt = json.loads(open(sys.argv[2]).read())
gap = 100 * (go["test_neg_elbo"] - pt["test_neg_elbo"]) / pt["test_neg_elbo"]
print("%-12s %4s %12.3f %12.3f %+6.2f%% %10.6f %10.6f" % (sys.argv[3], sys.argv[4], go["test_neg_elbo"], pt["test_neg_elbo"], gap, go["test_mse"], pt["test_mse"]))
PY
	done
done
