#!/usr/bin/env bash
# How the generators in weights/ and the Pix2Pix reference comparison in their model cards were made,
# exactly as run. Usage: bash train/recipe.sh [DATA_DIR] [RUNS_DIR]   (DATA_DIR: a folder of LLVIP-layout sets)
#
# On CPU (as shipped: two cores, runs concurrently, one thread each) the whole recipe takes about 90 minutes;
# with a GPU drop OMP_NUM_THREADS and --num-workers 0, and run one after the other or under accelerate launch.
set -euo pipefail
DATA_DIR=${1:-../shared/data}
RUNS=${2:-runs}
CACHE=${CACHE:-cache/286}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# 1. Resized lossless copies (shorter side 286) of every set's train and test split.
python -m irvis prepare "$DATA_DIR"/*/ --out "$CACHE" --size 286
SETS=$(for s in "$DATA_DIR"/*/; do echo "$CACHE/$(basename "$s")"; done)
TEST_SETS=$(for s in "$DATA_DIR"/*/; do [ -d "$s/infrared/test" ] && echo "${s%/}"; done)
BASE="--data $SETS --batch-size 4 --crop-size 256 --load-size 286 --gan-weight 0 --num-workers 0 --seed 0 \
  --checkpoint-every 200 --eval-every 400 --sample-every 400 --export-half"

# 2. Architecture comparison at one budget: default and reference, same recipe (L1, constant learning
#    rate, so the default's step-200 checkpoint is what a 200-step run gives), 200 steps of batch 4.
for d in vis2ir ir2vis; do
  python -m train --direction $d --output-dir "$RUNS/$d-default" --max-steps 200 --lr-schedule constant \
    --checkpoints-total-limit 20 $BASE &
  python -m train --direction $d --arch pix2pix-unet256 --output-dir "$RUNS/$d-reference" --max-steps 200 \
    --lr-schedule constant $BASE &
done
wait
for d in vis2ir ir2vis; do
  python -m train export --checkpoint "$RUNS/$d-default/checkpoints/checkpoint-000200" --output "$RUNS/$d-default-at-200"
done

# 3. The shipped generators: LLVIP's 59 pairs repeated 4x per epoch (LLVIP is what users bring, and only
#    13% of the sample pairs otherwise), L1 + SSIM, Pix2Pix's linear decay over the second half, 1200 steps.
for d in vis2ir ir2vis; do
  python -m train --direction $d --output-dir "$RUNS/$d-shipped" --repeat-sets llvip=4 --ssim-weight 50 \
    --max-steps 1200 --lr-schedule linear --checkpoints-total-limit 10 $BASE &
done
wait

# 4. weights/: the shipped runs exported in float16 with model cards whose tables are computed on the
#    original test splits, and the same-budget comparison with the reference.
for d in vis2ir ir2vis; do
  python -m train.publish $d --runs "$RUNS" --data "$DATA_DIR" --out weights/$d
done
