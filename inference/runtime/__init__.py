"""The runtime wing: what every model family runs on, and nothing of any one family.

The one compute thread (compute.py), devices (device.py), memory (memory.py), weight modes (quantize.py), our
C++ CPU kernels (kernels.py over csrc/: one file per kernel, ops.cpp declares the op library), progress
(progress.py) and the checks every engine makes on a request (request_checks.py).
"""
