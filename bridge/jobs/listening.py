"""What the daemon hears in input files: /continuo/analyze's answer, and the tempo a request without one renders at.

- **Answered on the receive thread, from memory when it can.** /continuo/analyze resolves its path like a job's
  input (under the input roots, size and duration within the limits) and answers with /continuo/analysis, then
  /continuo/beats (100 times a message). The analysis (bridge/audio/analysis.py) takes about 0.35 s of CPU per
  30 s here, so a handler may run it (HTTP's reply is what the handler answered); a file at max_input_s (600 s)
  holds the handlers for some 7 s. Results are kept by (path, size, modification time), the last ``CACHE_SIZE``
  files, so a continuation of a clip just analysed, or its variations, cost nothing more.
- **A request that sets no tempo is told what was heard** (``Listening.infer``): continue, variations, repaint,
  layer, stems and midi of an input file, when neither the request (its bpm setting) nor its session (a
  /continuo/context, the MIDI clock) set a tempo. The tempo, the metre (unless the request set one) and the first
  downbeat go into the job's params as ``inferred``, with the key heard (``key_heard``): the plan renders at that
  tempo and metre (bridge/jobs/plan.py:build_plan), a continuation's prompt starts on a downbeat and its output on
  the next (bridge/jobs/takes.py:take_request), MIDI is quantised from it, and the manifest keeps it. The client
  hears it right after `queued`, as /continuo/analysis with the job's id, and can send the job again with bpm set.
  The key heard becomes the job's key only with the request setting heard_key 1 (then the preset's {key} puts it
  into the text conditioning, "A minor"), also where the session set a tempo; a key setting wins over it.
  An explicit bpm always wins; a file with no steady tempo (confidence under ``INFER_MIN_CONFIDENCE``: clicks and
  drum loops score 0.4-0.9, dense mixes 0.3 and less) leaves the session's tempo in force.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.audio.analysis import Analysis, analyze
from bridge.audio.files import read_audio
from bridge.errors import BridgeError
from bridge.jobs.admission import check_input_file
from bridge.jobs.events import EventSink
from bridge.jobs.plan import resolve_input
from bridge.protocol.destinations import Destination
from bridge.settings import Settings

log = logging.getLogger("continuo.daemon")

CACHE_SIZE = 64
BEATS_PER_MESSAGE = 100
INFER_OPS = ("continue", "variations", "repaint", "layer", "stems", "midi")
INFER_MIN_CONFIDENCE = 0.25  # under it the session's tempo stands (noise, a drone, a rubato piano)


class Listening:
    def __init__(self, *, events: EventSink, input_roots: list[Path], limits: Settings) -> None:
        self.events, self.input_roots, self.limits = events, input_roots, limits
        self._cache: OrderedDict[tuple[str, int, int], Analysis] = OrderedDict()
        self._lock = threading.Lock()

    def analysis(self, path: Path) -> Analysis:
        """path's analysis, from memory while the file is unchanged."""
        stat = path.stat()
        key = (path.as_posix(), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        audio, rate = read_audio(path)
        found = analyze(audio, rate)
        log.info("job=- analysed %s: %.2f bpm (%.2f) %s, key %s (%.2f)", path.name, found.bpm, found.bpm_confidence,
                 found.metre, found.key or "-", found.key_confidence)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    def answer(self, raw_path: str, reply_to: Destination) -> Analysis:
        """/continuo/analyze: the input checked like a job's, analysed, told."""
        path = resolve_input(raw_path, self.input_roots)
        check_input_file(path, self.limits)
        found = self.analysis(path)
        self.send(reply_to, "", path, found)
        return found

    def send(self, reply_to: Destination, job_id: str, path: Path, found: Analysis) -> None:
        """/continuo/analysis, then the beats and downbeats in /continuo/beats messages."""
        self.events.emit(reply_to, "/continuo/analysis", job_id, path.as_posix(), float(found.bpm),
                         float(found.bpm_confidence), found.beats_per_bar, found.beat_unit,
                         float(found.metre_confidence), float(found.first_downbeat_s), float(found.bars), found.key,
                         float(found.key_confidence), float(max(found.lufs, -120.0)), float(found.peak_db),
                         float(found.seconds))
        for kind, times in (("beat", found.beats_s), ("downbeat", found.downbeats_s)):
            for first in range(0, len(times), BEATS_PER_MESSAGE):
                chunk = ",".join(f"{t:.3f}" for t in times[first: first + BEATS_PER_MESSAGE])
                self.events.emit(reply_to, "/continuo/beats", job_id, kind, first, chunk)

    def infer(self, op: str, args: Mapping[str, Any], settings: Mapping[str, Any], *,
              tempo_given: bool) -> tuple[dict[str, Any], Path, Analysis] | None:
        """(what to render at, the input, its analysis) for a request on an input file that set no tempo (or that
        asks for the key heard, heard_key 1); None where the request or its session set what it needs, the op
        takes no input, or nothing steady was heard. A path that does not resolve is left for admission to
        refuse."""
        raw = args.get("input_path")
        wants_tempo = not tempo_given and "bpm" not in settings
        wants_key = bool(settings.get("heard_key")) and "key" not in settings
        if op not in INFER_OPS or not raw or not (wants_tempo or wants_key):
            return None
        try:
            path = resolve_input(str(raw), self.input_roots)
            check_input_file(path, self.limits)
            found = self.analysis(path)
        except BridgeError:
            return None
        inferred: dict[str, Any] = {}
        if wants_tempo and found.bpm and found.bpm_confidence >= INFER_MIN_CONFIDENCE:
            inferred.update(bpm=round(found.bpm, 2), first_downbeat_s=round(found.first_downbeat_s, 4),
                            bpm_confidence=round(found.bpm_confidence, 3))
            if "beats_per_bar" not in settings and "beat_unit" not in settings:
                inferred.update(beats_per_bar=found.beats_per_bar, beat_unit=found.beat_unit)
        if wants_key and found.key:
            inferred["key"] = found.key
        if not inferred:
            return None
        if found.key:  # told either way, so the client can set it
            inferred.update(key_heard=found.key, key_confidence=round(found.key_confidence, 3))
        return inferred, path, found
