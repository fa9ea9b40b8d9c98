#!/usr/bin/env bash
# The pictures of docs/usage.md ("Guided edits"): linear against guided edits of generated faces
# (faces the model drew from its prior; no CelebA pixels), the commands shown there.
set -euo pipefail
OUT=${1:-docs/images}
for attribute in Smiling Male Eyeglasses Blond_Hair; do
    slug=$(echo "$attribute" | tr 'A-Z_' 'a-z-')
    for method in linear guided; do
        facevae arithmetic "$attribute" -n 4 --seed 5 --strengths=-2,0,2 --method "$method" --scale 2 \
            --out "$OUT/guided-$slug-$method.png"
    done
done
