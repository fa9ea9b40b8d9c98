#!/usr/bin/env bash
# Recipe of the attribute classifier that ships with facevae
# (src/facevae/model/weights/celeba64-attributes, the default guide of guided edits).
#
#   scripts/train_shipped_classifier.sh [SAMPLE_DIR] [WORK_DIR]
#
# SAMPLE_DIR: the 8,000-face CelebA sample (default ../shared/celeba-sample, read its README).
# WORK_DIR:   where the cache and the trained folder go (default ../guided-artifacts; never the
#             repository: the cache holds CelebA pixels, which must not be committed).
# The seeded split (seed 0) keeps 1,000 faces as a test split that training never sees and
# 600 for validation (early stopping); 6,400 train. The classifier is an ensemble of three
# networks trained with two recipes and merged (`classifier merge`): two (--members 2) with
# light augmentation for 30 epochs, one with stronger augmentation for 14 epochs (a guided
# keep holds each member's reading, and readings from differently trained networks hold what
# other classifiers see too: docs/evaluation.md). Its probabilities average each face with its
# mirror image. The last step copies the weights, config and metrics (no CelebA pixels) into
# the package and records the test split's scores.
set -euo pipefail
SAMPLE=${1:-../shared/celeba-sample}
WORK=${2:-../guided-artifacts}
SHIPPED=src/facevae/model/weights/celeba64-attributes
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

facevae prepare "$SAMPLE" --size 64 --out "$WORK/cache64" --val-fraction 0.075 --test-fraction 0.125 --split-seed 0
facevae classifier train --data "$WORK/cache64" --out "$WORK/light-augmentation" --members 2 \
    --convs-per-stage 2 --channels 32,64,128,256 --epochs 30 --patience 6 --seed 0 \
    --shift 2 --blur 0.2 --noise 0.02
facevae classifier train --data "$WORK/cache64" --out "$WORK/stronger-augmentation" --members 1 \
    --convs-per-stage 2 --channels 32,64,128,256 --epochs 14 --seed 1 \
    --shift 2 --blur 0.3 --noise 0.03
facevae classifier merge "$WORK/light-augmentation" "$WORK/stronger-augmentation" --data "$WORK/cache64" \
    --out "$WORK/shipped-classifier"
facevae classifier evaluate "$WORK/shipped-classifier" --data "$WORK/cache64" --split test
python scripts/package_shipped_classifier.py "$WORK/shipped-classifier" "$SHIPPED"
