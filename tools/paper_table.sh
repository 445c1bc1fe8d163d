#!/usr/bin/env bash
# The paper's comparison in miniature (Sariyildiz et al., CVPR 2023, Tables 1-2 and the
# stream-learning claim), on Fashion-MNIST with models/fmnist-sd: one classifier recipe
# (configs/smoke.toml: ResNet-18 at width 0.25, batch 64, the same augmentation, schedule and
# budget of N images, each run's images seen once in order) trained on
#   real        the real training images (data.source = "fmnist"),
#   synth-c     generated images, template "c" only,
#   synth-all   generated images, the paper's six templates (the smoke run itself),
#   fixed-1/10  generated images, a fixed dataset of N/10 images repeated 10 times
#               (generator.unique_images = N/10) instead of N new ones,
# each evaluated on the REAL t10k images. Prints a Markdown table (README.md has the figures).
#   tools/paper_table.sh [N] [RUNS_DIR]      (default N = configs/smoke.toml's train.total_images)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-$(sed -n 's/^total_images = //p' configs/smoke.toml)}
DIR=${2:-runs/paper-table-$(date +%s)}
BIN=${SYNTH_BUILD_DIR:-build}/bin
mkdir -p "$DIR"
common=(--set "run.dir=\"$DIR\"" --set "train.total_images=$N" --set run.sample_every_images=0
        --set train.checkpoint_every_images=0)
declare -A extra=(
  [real]='data.source="fmnist"'
  [synth-c]='prompts.templates=["c"]'
  [synth-all]='run.note=""'
  [fixed-1/10]="generator.unique_images=$((N / 10))"
)
echo "| training data ($N images, seen once) | real t10k top-1 | wall time |"
echo "| --- | --- | --- |"
for name in real synth-c synth-all fixed-1/10; do
  run_name=${name//\//-}
  start=$(date +%s)
  "$BIN/stream-train" configs/smoke.toml "${common[@]}" --set "run.name=\"$run_name\"" --set "${extra[$name]}" \
    > "$DIR.$run_name.log" 2>&1 || { echo "$name failed: see $DIR.$run_name.log" >&2; exit 1; }
  top1=$(grep '"event":"eval"' "$DIR/$run_name/metrics.jsonl" | tail -1 | sed 's/.*"top1":\([0-9.e-]*\).*/\1/')
  printf '| %s | %.1f%% | %d s |\n' "$name" "$(echo "$top1 * 100" | bc -l)" "$(( $(date +%s) - start ))"
done
