#!/usr/bin/env bash
# Regenerate the shipped sample data (deterministic: the same bytes every run).
# Run from the repository root: bash sample_data/make_sample_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
activepick simulate --out sample_data --n 6 --particles 25 --size 512 --diameter 48 \
    --snr 0.1 --distractors 3 --gradient 1 --seed 0
