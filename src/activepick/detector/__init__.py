"""The detector: PhosaurusNet and a light variant, grid targets, training, prediction, checkpoints."""
