"""The stems wing: HDemucs separation into drums, bass, other and vocals, beside the model families.

separator.py (StemSeparator: segments, cross-fades, sum-to-mix by construction, the one-time export on its own
thread) and paths.py (the separation paths: fp32, bf16, OpenVINO fp32 / bf16).
"""
