"""The tools wing: `continuo doctor`, `continuo keys`, `continuo train-style` (train_style.py) and the benchmarks."""
