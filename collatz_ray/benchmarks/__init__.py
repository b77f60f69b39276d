"""Benchmarks: speed against naive baselines, and a search trial's fixed cost."""
