"""Continuo's models, in wings bottom to top: the contract (api.py, errors.py, adapters.py, smoke.py), runtime/,
the families side by side (musicgen/, acestep/, stems/), loading.py, bench/. tests/test_layout.py holds the order."""
