"""Active learning: uncertainty strategies, oracles, the round engine and the benchmark."""
