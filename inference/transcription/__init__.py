"""The transcription wing: audio to notes with Spotify's Basic Pitch, through onnxruntime, beside the model families.

Why a wing of inference/: it runs a trained network (a model file, its own runtime, its own errors), the way
stems/ runs HDemucs; the bridge turns its notes into MIDI files (bridge/audio/midi_files.py) and transcribes
drums itself by onset and band (bridge/audio/drums.py: no model).

model.py (BasicPitch: the ONNX session, the 2 s windows and their overlap, the frame times) and notes.py (Note;
the note decoding of the model's onset and frame posteriors).

Why onnxruntime and a vendored model file: the basic-pitch package on PyPI requires TensorFlow on Linux with
Python 3.11 and later (about 600 MB, and it pins numpy < 2), which we neither want nor could install beside
torch 2.9. Its ONNX export runs on onnxruntime (MIT, about 28 MB, a core dependency) with none of that, so the
model file is vendored here and loaded directly; pre- and post-processing are ported from basic-pitch.

Provenance of nmp.onnx: basic-pitch 0.4.0 (`basic_pitch-0.4.0-py2.py3-none-any.whl` from PyPI,
sha256 738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0), path
`basic_pitch/saved_models/icassp_2022/nmp.onnx`, 230444 bytes, sha256
2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec (checked at load). Copyright 2022 Spotify AB,
Apache License 2.0: the licence and basic-pitch's NOTICE sit beside it (LICENSE, NOTICE), as the licence asks
for a redistribution. The model: Bittner et al., "A Lightweight Instrument-Agnostic Model for Polyphonic Note
Transcription and Multipitch Estimation", ICASSP 2022.
"""
