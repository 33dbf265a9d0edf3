"""The tools wing: `continuo doctor`, `continuo keys` and the benchmarks."""
