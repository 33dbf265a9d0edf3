"""`continuo analyze FILE` and `continuo midi FILE`: listening on this machine, no daemon needed.

``analyze`` prints the tempo, metre, first downbeat, length in bars, key and loudness (``--json``: every beat and
downbeat too, bridge/audio/analysis.py:Analysis.to_json). ``midi`` writes the file's notes as a standard MIDI
file (bridge/audio/transcription.py): ``--stem`` says what the file holds (a drum stem goes to the drum map, a
bass stem to the bass range, anything else to Basic Pitch over the whole range), at the tempo the analysis found
or ``--bpm``'s (an explicit tempo always wins), quantised from the first downbeat with ``--quantize 16``. It is
written beside the input as ``<name>.mid`` unless ``--out`` says where; an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.audio.midi_files import GRID_DIVISIONS, MIDI_STEMS
from bridge.errors import BadRequest

if TYPE_CHECKING:
    from bridge.audio.analysis import Analysis


def add_listen_commands(commands: argparse._SubParsersAction) -> None:
    analyze_parser = commands.add_parser("analyze", help="tempo, downbeats, metre, key and loudness of an audio file",
                                         description="Listens to an audio file on this machine (no daemon): "
                                                     "tempo with its confidence, metre, first downbeat, bars, "
                                                     "key, loudness.")
    analyze_parser.add_argument("input", type=Path, help="audio file (wav, flac, ogg, mp3, aiff)")
    analyze_parser.add_argument("--json", action="store_true", help="one JSON object, every beat and downbeat too")
    midi = commands.add_parser("midi", help="an audio file's notes as a MIDI file",
                               description="Transcribes an audio file to a standard MIDI file on this machine (no "
                                           "daemon): Basic Pitch for pitched audio, onsets and bands for drums.")
    midi.add_argument("input", type=Path, help="audio file: a mix or one stem")
    midi.add_argument("--stem", choices=MIDI_STEMS, default="mix",
                      help="what the file holds (default mix): drums map to GM drum notes, bass keeps to its range")
    midi.add_argument("--bpm", type=float, default=None, help="the MIDI file's tempo (default: the one heard)")
    midi.add_argument("--quantize", type=int, default=0, choices=(0, *GRID_DIVISIONS), metavar="N",
                      help="snap notes to 1/N notes from the first downbeat (16: sixteenths; default 0: off)")
    midi.add_argument("--out", type=Path, default=None, help="where to write (default: <input>.mid beside it)")
    midi.add_argument("--json", action="store_true", help="print one JSON object: the file, tempo, notes")


def run_analyze(args: argparse.Namespace) -> int:
    from bridge.audio.analysis import analyze  # here: every `continuo` command builds this parser
    from bridge.audio.files import read_audio

    audio, rate = read_audio(args.input)
    found = analyze(audio, rate)
    if args.json:
        print(json.dumps({"path": args.input.as_posix(), **found.to_json()}))
    else:
        print(describe(args.input.name, found))
    return 0


def describe(name: str, found: Analysis) -> str:
    """One line a musician reads: '<name>: 30.0 s, 120.00 BPM (confidence 0.85), 4/4 ...'."""
    tempo = (f"{found.bpm:.2f} BPM (confidence {found.bpm_confidence:.2f}), {found.metre} "
             f"(confidence {found.metre_confidence:.2f}), first downbeat at {found.first_downbeat_s:.3f} s, "
             f"{found.bars:.2f} bars" if found.bpm else "no steady tempo heard")
    key = f"{found.key} (confidence {found.key_confidence:.2f})" if found.key else "no key heard"
    return f"{name}: {found.seconds:.1f} s, {tempo}, {key}, {found.lufs:.1f} LUFS, {found.peak_db:.1f} dBTP"


def run_midi(args: argparse.Namespace) -> int:
    from bridge.audio.analysis import analyze
    from bridge.audio.context import MusicalContext
    from bridge.audio.files import read_audio, write_bytes_atomic
    from bridge.audio.transcription import stem_midi

    out = args.out or args.input.with_suffix(".mid")
    if out.exists():
        raise BadRequest(f"{out} exists and is left as it is; name another file with --out")
    audio, rate = read_audio(args.input)
    found = analyze(audio, rate)
    bpm = args.bpm or found.bpm
    if not bpm:
        raise BadRequest(f"no steady tempo heard in {args.input.name}; give the MIDI file's tempo with --bpm")
    context = MusicalContext(bpm=round(bpm, 3), beats_per_bar=found.beats_per_bar, beat_unit=found.beat_unit,
                             key=found.key, sample_rate=44100)
    origin = found.first_downbeat_s if args.bpm is None else 0.0
    result = stem_midi(audio, rate, args.stem, context=context, grid=args.quantize, origin_s=origin)
    write_bytes_atomic(out, result.data)
    summary = {"path": out.as_posix(), "stem": args.stem, "notes": len(result.notes), "bpm": round(bpm, 3),
               "bpm_from": "--bpm" if args.bpm else "heard", "metre": context.metre, "quantize": args.quantize}
    if args.json:
        print(json.dumps(summary))
    else:
        told = "given" if args.bpm else f"heard, confidence {found.bpm_confidence:.2f}"
        print(f"{out}: {len(result.notes)} notes of {args.stem} at {bpm:.2f} BPM ({told}), {context.metre}"
              + (f", quantised to 1/{args.quantize} from {origin:.3f} s" if args.quantize else ""), file=sys.stdout)
    return 0
