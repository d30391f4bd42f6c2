"""Training utilities: EMA, RNG state, callbacks."""
