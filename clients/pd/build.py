"""Writes clients/pd/continuo.pd, the Pure Data client, from a description in Python (run it after editing).

    python clients/pd/build.py          # rewrite continuo.pd
    python clients/pd/build.py --check  # exit 1 when continuo.pd differs from what this script writes

The patch is Pd vanilla 0.52+ only: netsend -u -b, netreceive -u -b, oscformat, oscparse, fudiformat,
soundfiler, text define, file, pdcontrol; no externals. Open it as a patch (daemon on port 9000, replies on 9001)
or use it as an abstraction, [continuo <daemon_port> <reply_port>]: one inlet takes the commands below, three
outlets give outputs (left), status (middle) and errors (right). tests/clients/test_pd.py drives it in a real Pd.

Commands (to the inlet, or from the message boxes on the patch):
    connect <host> <port>      listen <port>      hello      status      presets      play
    tempo <bpm>   metre <beats_per_bar> <beat_unit>   key <words...>   rate <Hz>       (each sends /continuo/context)
    preset <name>   bars <n>   seed <n, 0 = daemon picks; at most 16777215>
    generate <prompt words...>   continue <path>   variations <count>   stems <path> [drums,bass,...]   cancel
    jam <prompt words...>   jamstop   jamprompt <words...>   jamset <name> <number>   jambank save|recall <slot>
    transport 1|0   jamlevel <0..1>   jamanyway 0|1        (jam mode: [pd jam], see jam_transport and jam_player)
Every OSC message the patch sends is checked against osc_schema/continuo.json by tests/clients/test_pd.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATCH = HERE / "continuo.pd"
MAX_EXACT_SEED = 16_777_215  # 2^24 - 1: the largest integer every float32 above it cannot skip
SESSION_FILE = "continuo-session.txt"  # beside the patch, written at load: its modification time is the job ids' date


def escape(text: str) -> str:
    """Pd's file escapes: $ , ; in box text."""
    return text.replace("$", "\\$").replace(",", " \\,").replace(";", " \\;")


@dataclass
class Box:
    kind: str  # obj, msg, text, floatatom, symbolatom, canvas (a subpatch), graph (an array)
    text: str
    x: int
    y: int
    children: Canvas | None = None


@dataclass
class Canvas:
    """One Pd canvas: boxes by name, connections by name; lines() writes it in Pd's file format."""

    name: str = ""
    size: tuple[int, int] = (900, 700)
    boxes: dict[str, Box] = field(default_factory=dict)
    cords: list[tuple[str, int, str, int]] = field(default_factory=list)

    def add(self, key: str, kind: str, text: str, x: int, y: int, children: Canvas | None = None) -> str:
        assert key not in self.boxes, key
        self.boxes[key] = Box(kind, text, x, y, children)
        return key

    def obj(self, key: str, text: str, x: int, y: int) -> str:
        return self.add(key, "obj", text, x, y)

    def msg(self, key: str, text: str, x: int, y: int) -> str:
        return self.add(key, "msg", text, x, y)

    def wire(self, source: str, outlet: int, sink: str, inlet: int = 0) -> None:
        self.cords.append((source, outlet, sink, inlet))

    def chain(self, *keys: str) -> None:
        """Outlet 0 of each box into inlet 0 of the next."""
        for source, sink in zip(keys, keys[1:]):
            self.wire(source, 0, sink, 0)

    def lines(self, x: int = 0, y: int = 0) -> list[str]:
        head = f"#N canvas {x} {y} {self.size[0]} {self.size[1]} " + (f"{self.name} 0;" if self.name else "12;")
        out = [head]
        index = {key: n for n, key in enumerate(self.boxes)}
        for box in self.boxes.values():
            if box.kind == "canvas":
                assert box.children is not None
                out += box.children.lines(40, 40)
                out.append(f"#X restore {box.x} {box.y} pd {box.children.name};")
            elif box.kind == "graph":
                name, size = box.text.split()
                out += ["#N canvas 0 50 450 250 (subpatch) 0;", f"#X array {escape(name)} {size} float 2;",
                        f"#X coords 0 1 {size} -1 300 80 1 0 0;", f"#X restore {box.x} {box.y} graph;"]
            elif box.kind in ("floatatom", "symbolatom"):
                width, label = box.text.split(maxsplit=1)
                out.append(f"#X {box.kind} {box.x} {box.y} {width} 0 0 1 {label} - -;")
            else:
                text = f" {escape(box.text)}" if box.text else ""
                out.append(f"#X {box.kind} {box.x} {box.y}{text};")
        unknown = [cord for cord in self.cords if cord[0] not in index or cord[2] not in index]
        assert not unknown, f"cords to boxes that do not exist: {unknown}"
        out += [f"#X connect {index[a]} {o} {index[b]} {i};" for a, o, b, i in self.cords]
        return out


class Column:
    """Places boxes top to bottom at one x, so the description below reads as the patch does."""

    def __init__(self, canvas: Canvas, x: int, y: int = 20, step: int = 28) -> None:
        self.canvas, self.x, self.y, self.step = canvas, x, y, step

    def _next(self, dx: int) -> tuple[int, int]:
        at = (self.x + dx, self.y)
        self.y += self.step
        return at

    def obj(self, key: str, text: str, dx: int = 0) -> str:
        return self.canvas.obj(key, text, *self._next(dx))

    def msg(self, key: str, text: str, dx: int = 0) -> str:
        return self.canvas.msg(key, text, *self._next(dx))


COMMANDS = ("connect", "listen", "hello", "tempo", "metre", "key", "rate", "bars", "preset", "seed", "generate",
            "continue", "variations", "stems", "cancel", "status", "presets", "play", "midi")

# (route key, oscformat types, address, setting names): every request the patch can send; tests/clients/test_pd.py
# checks each against the schema
REQUESTS = (("hello", "si", "hello", ()), ("context", "fiisi", "context", ()), ("generate", "sssf", "generate", ()),
            ("generate-seed", "sssfsi", "generate", ("seed",)), ("continue", "sssf", "continue", ()),
            ("variations", "sssifss", "variations", ("prompt",)), ("stems", "sss", "stems", ()),
            ("midi", "sss", "midi", ()), ("cancel", "s", "cancel", ()), ("ack", "s", "ack", ()),
            ("status", "", "status", ()), ("presets", "", "presets", ()),
            ("jam-start", "sssfsisssiss", "jam/start", ("bpm", "beats_per_bar", "clock", "behind_ok", "preset")),
            ("jam-control", "sss", "jam/control", ()), ("jam-stop", "s", "jam/stop", ()),
            ("jam-bank", "ssi", "jam/bank", ()), ("jam-transport", "ffii", "jam/transport", ()))


def osc_out(c: Canvas) -> None:
    """[s $0-send] <kind> <args...> -> the kind's [oscformat] -> netsend."""
    col = Column(c, 20)
    col.obj("send", "r $0-send")
    col.obj("sendtrim", "list trim")
    col.obj("sendroute", "route " + " ".join(key for key, *_ in REQUESTS))
    c.chain("send", "sendtrim", "sendroute")
    for n, (key, types, address, _) in enumerate(REQUESTS):
        flag = f"-f {types} " if types else ""
        c.obj(f"list-{key}", "list", 20 + 15 * n - 10, col.y)
        col.obj(f"fmt-{key}", f"oscformat {flag}continuo {address.replace('/', ' ')}", dx=15 * n + 40)
        c.wire("sendroute", n, f"list-{key}")  # route passes "pd 9001" on as a message named pd: make it a list
        c.wire(f"list-{key}", 0, f"fmt-{key}")
        c.wire(f"fmt-{key}", 0, "bytes")
    col.obj("bytes", "list prepend send")
    col.obj("bytestrim", "list trim")
    col.obj("netsend", "netsend -u -b")
    c.obj("connect", "r $0-connect", 200, col.y - 3 * col.step)
    c.chain("bytes", "bytestrim", "netsend")
    c.wire("connect", 0, "netsend")


def strip_job(c: Canvas, col: Column, name: str, event_outlet: int, sink: str) -> None:
    """<job> <args...> -> <name> <args...> to sink."""
    col.obj(f"{name}-split", "list split 1")
    col.obj(f"{name}-prepend", f"list prepend {name}")
    c.wire(f"as-list-{name}", 0, f"{name}-split")
    c.wire(f"{name}-split", 1, f"{name}-prepend")
    c.wire(f"{name}-prepend", 0, sink)


def osc_in(c: Canvas) -> None:
    """netreceive -> oscparse -> one branch per event; done and error are acknowledged at once."""
    col = Column(c, 420)
    col.obj("listen", "r $0-listen")
    col.obj("netreceive", "netreceive -u -b")
    col.obj("oscparse", "oscparse")
    col.obj("intrim", "list trim")
    col.obj("incontinuo", "route continuo")
    col.obj("events", "route output error done queued progress jam")
    c.chain("listen", "netreceive", "oscparse", "intrim", "incontinuo", "events")
    c.obj("jam-events", "s $0-jamin", 820, col.y)  # chunk, state, scheduled: to [pd jam]
    c.wire("events", 5, "jam-events")
    for n, name in enumerate(("output", "error", "done", "queued", "progress")):
        c.obj(f"as-list-{name}", "list", 420 + 60 * n, col.y)
        c.wire("events", n, f"as-list-{name}")  # "<job> ..." would be a message named after the job
    col.y += col.step
    c.obj("status", "list trim", 760, col.y)  # "queued 0 1.5": a message named by its kind, for [route]
    c.obj("status-send", "s $0-status", 760, col.y + col.step)
    c.wire("status", 0, "status-send")
    c.wire("events", 6, "status")  # welcome, context, presets, status, limits, partial, slot, models, adapters, pong
    # output <job> <name> <path> <sr> <ch> <seconds> <bars> <lufs> <peak>: read into the arrays, then
    # "<name> <path> <bars> <samples read>" to the left outlet
    col.obj("out-split", "list split 1")
    col.obj("out-fields", "unpack s s f f f f")
    col.obj("out-pack", "pack s s f")
    col.obj("out-tee", "t a a")
    col.obj("out-arrays", "list append $0-l $0-r")
    col.msg("out-read", "read -resize $2 $4 $5")
    col.obj("soundfiler", "soundfiler")
    col.obj("out-append", "list prepend")
    col.obj("out-send", "s $0-output")
    c.wire("as-list-output", 0, "out-split")
    c.wire("out-split", 1, "out-fields")
    c.wire("out-fields", 5, "out-pack", 2)  # unpack fires right to left: bars, then path, then name (hot)
    c.wire("out-fields", 1, "out-pack", 1)
    # a MIDI file (output <stem>-midi, a .mid) is not sound: "<name> <path> <bars> 0" without soundfiler
    c.obj("out-name", "t s s", 1100, col.y - 5 * col.step)
    c.obj("out-midi", "select mix-midi drums-midi bass-midi other-midi vocals-midi", 1100, col.y - 4 * col.step)
    c.obj("out-midi-name", "symbol", 1100, col.y - 3 * col.step)
    c.obj("out-midi-pack", "pack s s f", 1100, col.y - 2 * col.step)
    c.obj("out-midi-read", "list append 0", 1100, col.y - col.step)
    c.wire("out-fields", 0, "out-name")
    c.wire("out-name", 1, "out-midi-name", 1)  # t fires right to left: the name is kept, then tested
    c.wire("out-name", 0, "out-midi")
    for outlet in range(5):
        c.wire("out-midi", outlet, "out-midi-name")
    c.wire("out-midi", 5, "out-pack", 0)  # any other name: a sound file, read into the arrays
    c.wire("out-fields", 5, "out-midi-pack", 2)
    c.wire("out-fields", 1, "out-midi-pack", 1)
    c.chain("out-midi-name", "out-midi-pack", "out-midi-read", "out-send")
    c.wire("out-pack", 0, "out-tee")
    c.wire("out-tee", 1, "out-append", 1)
    c.wire("out-tee", 0, "out-arrays")
    c.wire("out-arrays", 0, "out-read")
    c.chain("out-read", "soundfiler", "out-append", "out-send")
    # the rest keep their job id off: queued <position> <eta_s>, progress <fraction> <stage>, done <...>
    col.y += 10
    strip_job(c, col, "queued", 3, "status")
    strip_job(c, col, "progress", 4, "status")
    # error <job> <code> <message>: to the error outlet, then ack
    col = Column(c, 640, 200)
    col.obj("err-tee", "t a a")
    col.obj("err-send", "s $0-error")
    c.wire("as-list-error", 0, "err-tee")
    c.wire("err-tee", 1, "err-send")
    col.obj("err-job", "list split 1")
    c.wire("err-tee", 0, "err-job")
    c.wire("err-job", 0, "ack-job")
    # done <job> <outputs> <seed> <elapsed>: status, the seed kept when Pd holds it exactly, then ack
    col = Column(c, 800, 200)
    col.obj("done-tee", "t a a a")
    col.obj("done-seed", "unpack s f f f", dx=80)
    col.obj("done-seedok", "moses 16777216", dx=80)
    col.obj("done-keep", "s $0-lastseed", dx=80)
    col.msg("done-unusable", "seed-unusable $1", dx=80)
    col.obj("done-split", "list split 1")
    col.obj("done-prepend", "list prepend done")
    c.wire("as-list-done", 0, "done-tee")
    c.wire("done-tee", 2, "done-seed")
    c.wire("done-seed", 2, "done-seedok")
    c.wire("done-seedok", 0, "done-keep")
    c.wire("done-seedok", 1, "done-unusable")
    c.wire("done-unusable", 0, "status")
    c.wire("done-tee", 1, "done-split")
    c.wire("done-split", 1, "done-prepend")
    c.wire("done-prepend", 0, "status")
    c.wire("done-tee", 0, "done-job")
    c.obj("done-job", "list split 1", 700, col.y)
    c.wire("done-job", 0, "ack-job")
    # ack <job>, unless the job id is empty (an error about no job)
    col = Column(c, 640, col.y + 40)
    col.obj("ack-job", "unpack s")
    col.obj("ack-tee", "t s s")
    col.obj("ack-chars", "list fromsymbol")
    col.obj("ack-length", "list length")
    col.obj("ack-nonempty", "moses 1")
    col.obj("ack-id", "symbol", dx=80)
    col.msg("ack-msg", "ack $1", dx=80)
    col.obj("ack-send", "s $0-send", dx=80)
    c.chain("ack-job", "ack-tee")
    c.wire("ack-tee", 1, "ack-id", 1)
    c.wire("ack-tee", 0, "ack-chars")
    c.chain("ack-chars", "ack-length", "ack-nonempty")
    c.wire("ack-nonempty", 1, "ack-go")
    c.obj("ack-go", "t b", 720, c.boxes["ack-nonempty"].y)
    c.wire("ack-go", 0, "ack-id")
    c.chain("ack-id", "ack-msg", "ack-send")


def join_words(c: Canvas, col: Column, name: str, source: str, outlet: int, sink: str, inlet: int) -> None:
    """Words (symbols and numbers) -> one symbol joined by spaces, or the empty symbol for none."""
    col.obj(f"{name}-mark", f"list prepend {name}")
    col.obj(f"{name}-trim", "list trim")
    col.obj(f"{name}-fudi", "fudiformat -u")
    col.obj(f"{name}-split", f"list split {len(name) + 1}")  # the codes of "<name> "
    col.obj(f"{name}-symbol", "list tosymbol")
    c.msg(f"{name}-none", "symbol", col.x + 90, col.y - col.step)
    c.wire(source, outlet, f"{name}-mark")
    c.chain(f"{name}-mark", f"{name}-trim", f"{name}-fudi", f"{name}-split")
    c.wire(f"{name}-split", 1, f"{name}-symbol")  # the words after the "<name> " marker
    c.wire(f"{name}-split", 2, f"{name}-none")
    c.wire(f"{name}-symbol", 0, sink, inlet)
    c.wire(f"{name}-none", 0, sink, inlet)


def commands(c: Canvas) -> None:
    """[r $0-cmd] -> settings kept in the patch, the session context, and jobs."""
    col = Column(c, 20, 600)
    col.obj("cmd", "r $0-cmd")
    col.obj("cmds", "route " + " ".join(COMMANDS))
    c.wire("cmd", 0, "cmds")
    n = {name: index for index, name in enumerate(COMMANDS)}
    c.obj("to-send", "s $0-send", 20, 1500)
    col.obj("connect-list", "list")
    col.msg("connect-msg", "connect $1 $2")
    col.obj("connect-send", "s $0-connect")
    c.wire("cmds", n["connect"], "connect-list")
    c.wire("connect-list", 0, "connect-msg")
    c.chain("connect-msg", "connect-send")
    col.obj("listen-port", "t f f")
    col.msg("listen-msg", "listen $1")
    col.obj("listen-send", "s $0-listen")
    c.wire("cmds", n["listen"], "listen-port")
    c.chain("listen-port", "listen-msg", "listen-send")
    col.obj("reply-port", "f 9001")
    c.wire("listen-port", 1, "reply-port", 1)
    c.wire("cmds", n["hello"], "reply-port")
    col.msg("hello-msg", "hello pd $1")
    c.chain("reply-port", "hello-msg", "to-send")
    context(c, n)
    settings(c, n)
    job_ids(c)
    generate(c, n)
    file_jobs(c, n)
    col = Column(c, 1900, 660)
    col.obj("cancel-job", "symbol")
    col.msg("cancel-msg", "cancel $1")
    c.obj("cancel-id", "r $0-newid", 1980, 660)
    c.wire("cancel-id", 0, "cancel-job", 1)
    c.wire("cmds", n["cancel"], "cancel-job")
    c.chain("cancel-job", "cancel-msg", "to-send")
    for name, x in (("status", 2000), ("presets", 2100)):
        c.msg(f"{name}-msg", name, x, 720)
        c.wire("cmds", n[name], f"{name}-msg")
        c.wire(f"{name}-msg", 0, "to-send")
    c.obj("play-send", "s $0-play", 2200, 720)
    c.wire("cmds", n["play"], "play-send")


def context(c: Canvas, n: dict[str, int]) -> None:
    """tempo, metre, key and rate each change their part, then /continuo/context goes out whole."""
    col = Column(c, 200, 660)
    col.obj("tempo-set", "t b f")
    c.wire("cmds", n["tempo"], "tempo-set")
    col.obj("metre-set", "unpack f f")
    col.obj("metre-on", "t b f")
    c.wire("cmds", n["metre"], "metre-set")
    c.wire("metre-set", 0, "metre-on")
    col.obj("rate-set", "t b f")
    c.wire("cmds", n["rate"], "rate-set")
    col = Column(c, 420, 660)
    join_words(c, col, "key", "cmds", n["key"], "key-set", 0)
    col.obj("key-set", "t b s")
    col = Column(c, 200, 860)
    col.obj("context-go", "t b b b b b")
    row = col.y
    parts = [("bpm", "f 120"), ("beats", "f 4"), ("unit", "f 4"), ("key", "symbol C\\ major"), ("rate", "f 48000")]
    for index, (name, text) in enumerate(parts):
        c.obj(f"ctx-{name}", text, 200 + 70 * index, row)
        c.wire("context-go", index, f"ctx-{name}")  # the trigger fires right to left: rate first, bpm (hot) last
    col.y += col.step
    col.obj("context-pack", "pack f f f s f")
    col.msg("context-msg", "context $1 $2 $3 $4 $5")
    c.chain("context-pack", "context-msg", "to-send")
    for index, (name, _) in enumerate(parts):
        c.wire(f"ctx-{name}", 0, "context-pack", index)
    for setter, part in (("tempo-set", "bpm"), ("metre-on", "beats"), ("rate-set", "rate"), ("key-set", "key")):
        c.wire(setter, 1, f"ctx-{part}", 1)
        c.wire(setter, 0, "context-go")
    c.wire("metre-set", 1, "ctx-unit", 1)


def settings(c: Canvas, n: dict[str, int]) -> None:
    """bars, preset and seed for the next job; "seed last" takes the seed of the last done job."""
    col = Column(c, 640, 660)
    col.obj("bars", "f 4")
    c.wire("cmds", n["bars"], "bars")
    col.obj("preset", "symbol default")
    c.wire("cmds", n["preset"], "preset")
    col.obj("seed-arg", "route last")
    col.obj("seed-last", "f")
    col.obj("seed-clip", f"clip 0 {MAX_EXACT_SEED}")
    col.obj("seed", "f 0")
    c.obj("seed-done", "r $0-lastseed", 760, 660 + 3 * 28)
    c.wire("seed-done", 0, "seed-last", 1)
    c.wire("cmds", n["seed"], "seed-arg")
    c.wire("seed-arg", 0, "seed-last")
    c.wire("seed-arg", 1, "seed-clip")
    c.wire("seed-last", 0, "seed-clip")
    c.wire("seed-clip", 0, "seed")
    # the stores pass each new value on to the jobs' own stores; at load they pass their defaults
    c.obj("settings-load", "r $0-load", 760, 660)
    c.obj("settings-order", "t b b b", 760, 688)
    c.wire("settings-load", 0, "settings-order")
    for outlet, store in enumerate(("bars", "preset", "seed")):
        c.wire("settings-order", outlet, store)


def job_ids(c: Canvas) -> None:
    """[s $0-newjob] bang -> [s $0-newid] pd-<Y>-<M>-<D>-<h>-<m>-<s>-<random>-<n>: when the patch was opened, a
    random number and a count, so ids stay unique across reboots and across machines (a reused id with another
    request is refused by the daemon, id_conflict; before, pd-<session>-<n> began again on every new machine).

    Pd vanilla has no clock object, so at load the patch writes continuo-session.txt beside itself and reads the
    time back as the file's modification time ([file stat], Pd 0.52+). The random part is three bytes of
    /dev/urandom ([file handle]); where there is none (Windows), a [random] seeded with [realtime]'s jitter ([random]
    alone starts from the same seed in every Pd)."""
    col = Column(c, 20, 1100)
    col.obj("newjob", "r $0-newjob")
    col.obj("job-count", "f")
    col.obj("job-next", "+ 1")
    col.obj("job-order", "t b f")
    col.obj("job-stamp", "list")  # holds Y M D h m s random (its right inlet, at load)
    col.obj("job-with-count", "list append")
    col.msg("job-words", "pd-$1-$2-$3-$4-$5-$6-$7-$8")
    col.obj("job-fudi", "fudiformat -u")
    col.obj("job-symbol", "list tosymbol")
    col.obj("job-send", "s $0-newid")
    c.chain("newjob", "job-count", "job-next", "job-order")
    c.wire("job-next", 0, "job-count", 1)
    c.wire("job-order", 1, "job-with-count", 1)
    c.wire("job-order", 0, "job-stamp")
    c.chain("job-stamp", "job-with-count", "job-words", "job-fudi", "job-symbol", "job-send")
    # at load (right to left): the session file's path; a random part (jitter-seeded, then /dev/urandom where it
    # can be read); the file written; its time read back
    col = Column(c, 200, 1100)
    col.obj("session-load", "r $0-load")
    col.obj("session-steps", "t b b b b b b")
    col.obj("session-clock", "realtime", dx=240)
    col.msg("session-dir", "dir", dx=120)
    col.obj("session-here", "pdcontrol", dx=120)
    col.obj("session-name", f"list append {SESSION_FILE}", dx=120)
    col.obj("session-join", "file join", dx=120)
    col.obj("session-elapsed", "t b f", dx=240)
    col.obj("session-micro", "* 1000", dx=280)
    col.msg("session-seed", "seed $1", dx=280)
    col.obj("session-jitter", "random 1000000", dx=240)
    col.msg("session-urandom", "open /dev/urandom r, 3, close", dx=360)
    col.obj("session-bytes", "file handle", dx=360)
    col.obj("session-number", "expr $f1 + 256*$f2 + 65536*$f3", dx=360)
    col.obj("session-six", "mod 1000000", dx=360)
    col.obj("session-random", "f", dx=240)
    col.obj("session-drawn", "t b f f", dx=240)
    col.msg("session-set", "set $1", dx=120)
    col.obj("session-text", "text define $0-session", dx=120)
    col.msg("session-write", f"write -c {SESSION_FILE}", dx=120)
    col.obj("session-path", "symbol")
    col.obj("session-stat", "file stat")
    col.obj("session-mtime", "route mtime")
    col.obj("session-time", "list split 6")
    col.obj("session-stamp", "list append")
    c.chain("session-load", "session-steps")
    c.wire("session-steps", 5, "session-clock")  # start timing
    c.wire("session-steps", 4, "session-dir")
    c.chain("session-dir", "session-here", "session-name", "session-join")
    c.wire("session-join", 0, "session-path", 1)  # <patch folder>/continuo-session.txt
    c.wire("session-steps", 3, "session-clock", 1)  # stop: the elapsed ms, jitter in its last digits
    c.wire("session-clock", 0, "session-elapsed")
    c.wire("session-elapsed", 1, "session-micro")
    c.chain("session-micro", "session-seed", "session-jitter")
    c.wire("session-elapsed", 0, "session-jitter")
    c.wire("session-jitter", 0, "session-random", 1)
    c.wire("session-steps", 2, "session-urandom")  # where it can be read, it replaces the jitter's number
    c.chain("session-urandom", "session-bytes", "session-number", "session-six")
    c.wire("session-six", 0, "session-random", 1)
    c.wire("session-steps", 1, "session-random")
    c.chain("session-random", "session-drawn")
    c.wire("session-drawn", 2, "session-stamp", 1)
    c.wire("session-drawn", 1, "session-set")
    c.wire("session-set", 0, "session-text")
    c.wire("session-drawn", 0, "session-write")
    c.wire("session-write", 0, "session-text")
    c.wire("session-steps", 0, "session-path")
    c.chain("session-path", "session-stat", "session-mtime", "session-time", "session-stamp")
    c.wire("session-stamp", 0, "job-stamp", 1)


def generate(c: Canvas, n: dict[str, int]) -> None:
    """generate <prompt words...> (or a MIDI note: the last prompt again) -> /continuo/generate, with
    "seed <n>" only when a seed is set (0: the daemon picks)."""
    col = Column(c, 1100, 660)
    join_words(c, col, "prompt", "cmds", n["generate"], "prompt-set", 0)
    col.obj("prompt-set", "t b s")
    col.obj("prompt", "symbol")
    c.wire("prompt-set", 1, "prompt")
    c.obj("midi", "r $0-midi", 1250, col.y)
    col.obj("gen-go", "t b b b b b b")
    c.wire("prompt-set", 0, "gen-go")
    c.wire("midi", 0, "gen-go")
    row = col.y
    c.obj("gen-id", "symbol", 1100, row)
    c.obj("gen-newid", "r $0-newid", 1100, row - 2 * col.step + 4)
    c.wire("gen-newid", 0, "gen-id", 1)
    c.obj("gen-preset", "symbol", 1170, row)
    c.obj("gen-prompt", "symbol", 1240, row)
    c.obj("gen-bars", "f", 1310, row)
    c.obj("gen-seed", "f", 1360, row)
    c.obj("gen-newjob", "s $0-newjob", 1420, row)
    c.wire("gen-go", 5, "gen-newjob")
    for outlet, key in ((4, "gen-seed"), (3, "gen-bars"), (2, "gen-prompt"), (1, "gen-preset"), (0, "gen-id")):
        c.wire("gen-go", outlet, key)
    c.wire("seed", 0, "gen-seed", 1)
    c.wire("bars", 0, "gen-bars", 1)
    c.wire("prompt", 0, "gen-prompt", 1)
    c.wire("preset", 0, "gen-preset", 1)
    # gen-go's outlets bang the stores, which hold what the patch keeps: wire the kept values in
    col.y += col.step
    col.obj("gen-pack", "pack s s s f f")
    for index, key in enumerate(("gen-id", "gen-preset", "gen-prompt", "gen-bars", "gen-seed")):
        c.wire(key, 0, "gen-pack", index)
    col.obj("gen-split", "list split 4")
    c.wire("gen-pack", 0, "gen-split")
    # the seed (middle outlet) fires first: it picks the request kind and what to append
    c.obj("gen-seed0", "sel 0", 1250, col.y)
    c.wire("gen-split", 1, "gen-seed0")
    c.obj("gen-none", "t b b", 1250, col.y + 28)
    c.obj("gen-some", "t b f", 1330, col.y + 28)
    c.wire("gen-seed0", 0, "gen-none")
    c.wire("gen-seed0", 1, "gen-some")
    c.msg("gen-kind-plain", "list generate", 1250, col.y + 56)
    c.msg("gen-kind-seed", "list generate-seed", 1380, col.y + 84)
    c.msg("gen-seedpair", "list seed $1", 1330, col.y + 112)
    c.wire("gen-none", 1, "gen-kind-plain")
    c.wire("gen-some", 1, "gen-seedpair")
    c.wire("gen-some", 0, "gen-kind-seed")
    col.obj("gen-append", "list append")
    col.y += 3 * col.step
    col.obj("gen-kind", "list prepend generate")
    c.wire("gen-none", 0, "gen-append", 1)  # a bang empties the right inlet: no seed pair
    c.wire("gen-seedpair", 0, "gen-append", 1)
    c.wire("gen-kind-plain", 0, "gen-kind", 1)
    c.wire("gen-kind-seed", 0, "gen-kind", 1)
    c.wire("gen-split", 0, "gen-append")
    c.chain("gen-append", "gen-kind", "to-send")


def file_jobs(c: Canvas, n: dict[str, int]) -> None:
    """continue <path>, variations <count> (of the last prompt), stems <path> [stems]."""
    # continue <path> -> continue <job> <preset> <path> <bars>
    col = Column(c, 1500, 660)
    col.obj("cont-path", "symbol")
    col.obj("cont-go", "t b b b s b")
    c.wire("cmds", n["continue"], "cont-path")
    c.chain("cont-path", "cont-go")
    row = col.y
    col.y += col.step
    col.obj("cont-pack", "pack s s s f")
    col.obj("cont-kind", "list prepend continue")
    c.chain("cont-pack", "cont-kind", "to-send")
    c.obj("cont-newjob", "s $0-newjob", 1700, row - col.step)
    c.wire("cont-go", 4, "cont-newjob")
    c.wire("cont-go", 3, "cont-pack", 2)
    stores(c, "cont", row, 1500, ("id", "preset", "bars"), (0, 1, 3), "cont-go", (0, 1, 2), "cont-pack")
    # variations <count> -> variations <job> <preset> "" <count> <bars> prompt <last prompt>
    col = Column(c, 1500, 900)
    col.obj("var-count", "f")
    col.obj("var-go", "t b b b b f b")
    c.wire("cmds", n["variations"], "var-count")
    c.chain("var-count", "var-go")
    row = col.y
    col.y += col.step
    col.obj("var-pack", "pack s s s f f s s")
    col.obj("var-kind", "list prepend variations")
    c.chain("var-pack", "var-kind", "to-send")
    c.obj("var-newjob", "s $0-newjob", 1700, row - col.step)
    c.wire("var-go", 5, "var-newjob")
    c.wire("var-go", 4, "var-pack", 3)
    c.msg("var-empty", "symbol", 1800, row)
    c.msg("var-setting", "symbol prompt", 1870, row)
    c.wire("var-go", 3, "var-promptfill")
    c.obj("var-promptfill", "t b b b", 1960, row - col.step)
    c.wire("var-promptfill", 2, "var-empty")
    c.wire("var-promptfill", 1, "var-setting")
    c.wire("var-promptfill", 0, "var-prompt")
    c.obj("var-prompt", "symbol", 2000, row)
    c.wire("prompt", 0, "var-prompt", 1)
    c.wire("var-empty", 0, "var-pack", 2)
    c.wire("var-setting", 0, "var-pack", 5)
    c.wire("var-prompt", 0, "var-pack", 6)
    stores(c, "var", row, 1500, ("id", "preset", "bars"), (0, 1, 4), "var-go", (0, 1, 2), "var-pack")
    # stems <path> [stems] -> stems <job> <path> <stems, default all four>
    path_job(c, n, "stems", "drums,bass,other,vocals", 2200, 800)
    # midi <path> [mix|stems] -> midi <job> <path> <what to transcribe, default mix>: .mid files at the session tempo
    path_job(c, n, "midi", "mix", 2200, 1100)


def path_job(c: Canvas, n: dict[str, int], kind: str, default: str, x: int, y: int) -> None:
    """<kind> <path> [list] -> <kind> <job> <path> <list, default ``default``>."""
    col = Column(c, x, y)
    col.obj(f"{kind}-args", f"list append {default}")
    col.obj(f"{kind}-two", "list split 2")
    col.obj(f"{kind}-go", "t b a b")
    c.wire("cmds", n[kind], f"{kind}-args")
    c.chain(f"{kind}-args", f"{kind}-two")
    c.wire(f"{kind}-two", 0, f"{kind}-go")
    c.wire(f"{kind}-two", 2, f"{kind}-go")  # "<kind> <path>" alone when the default was not appended (impossible)
    c.obj(f"{kind}-newjob", "s $0-newjob", x + 200, col.y - col.step)
    c.wire(f"{kind}-go", 2, f"{kind}-newjob")
    col.obj(f"{kind}-id", "symbol")
    c.obj(f"{kind}-newid", "r $0-newid", x + 100, col.y - col.step)
    c.wire(f"{kind}-newid", 0, f"{kind}-id", 1)
    col.obj(f"{kind}-append", "list append")
    col.obj(f"{kind}-kind", f"list prepend {kind}")
    c.wire(f"{kind}-go", 1, f"{kind}-append", 1)
    c.wire(f"{kind}-go", 0, f"{kind}-id")
    c.chain(f"{kind}-id", f"{kind}-append", f"{kind}-kind", "to-send")


def stores(c: Canvas, prefix: str, row: int, x: int, names: tuple[str, ...], inlets: tuple[int, ...], go: str,
           outlets: tuple[int, ...], pack: str) -> None:
    """One store per kept value (the job id, the preset, the bars), banged by go into pack's inlets."""
    sources = {"id": None, "preset": "preset", "bars": "bars"}
    for index, (name, inlet, outlet) in enumerate(zip(names, inlets, outlets)):
        key = f"{prefix}-{name}"
        c.obj(key, "f" if name == "bars" else "symbol", x + 80 * index, row)
        c.wire(go, outlet, key)
        c.wire(key, 0, pack, inlet)
        if sources[name] is None:
            c.obj(f"{key}-new", "r $0-newid", x + 80 * index, row - 56)
            c.wire(f"{key}-new", 0, key, 1)
        else:
            c.wire(sources[name], 0, key, 1)


def machinery() -> Canvas:
    c = Canvas(name="osc", size=(1400, 900))
    osc_out(c)
    osc_in(c)
    commands(c)
    return c


JAM_COMMANDS = ("jam", "jamstop", "jamprompt", "jamset", "jambank", "transport", "tempo", "metre", "jamlevel",
                "jamanyway", "preset")


def ours(c: Canvas, kind: str, outlet: int, x: int, y: int) -> str:
    """A jam event's "<jam_id> <args...>" from [route chunk state scheduled]: the args, only when the id is the
    patch's jam (another client's jam is not played here). Returns the box that gives them."""
    c.obj(f"{kind}-list", "list", x, y)
    c.obj(f"{kind}-split", "list split 1", x, y + 28)
    c.obj(f"{kind}-keep", "list", x + 120, y + 84)
    c.obj(f"{kind}-ours", "sel none", x, y + 56)
    c.obj(f"{kind}-id", "r $0-jamid", x + 90, y + 28)
    c.wire("jam-kinds", outlet, f"{kind}-list")
    c.chain(f"{kind}-list", f"{kind}-split")
    c.wire(f"{kind}-split", 1, f"{kind}-keep", 1)  # list split gives the rest first: kept, then the id tested
    c.wire(f"{kind}-split", 0, f"{kind}-ours")
    c.wire(f"{kind}-id", 0, f"{kind}-ours", 1)
    c.wire(f"{kind}-ours", 0, f"{kind}-keep")
    return f"{kind}-keep"


def to_status(c: Canvas, key: str, words: str, source: str, x: int, y: int, outlet: int = 0) -> None:
    """source's list -> "<words> <list>" on the status outlet."""
    c.obj(f"{key}-words", f"list prepend {words}", x, y)
    c.obj(f"{key}-trim", "list trim", x, y + 28)
    c.obj(f"{key}-status", "s $0-status", x, y + 56)
    c.wire(source, outlet, f"{key}-words")
    c.chain(f"{key}-words", f"{key}-trim", f"{key}-status")


def jam_transport(c: Canvas, n: dict[str, int]) -> None:
    """The patch's own transport: a beat clock at the patch's tempo ([metro]) and a beat counter. Each beat sends
    /continuo/jam/transport <bpm> <beat> <playing> <beats_per_bar> (the daemon's host clock follows it); each bar
    line (beat % beats_per_bar == 0) plays the bar loaded for it and loads the next one."""
    col = Column(c, 20, 120)
    col.obj("tempo-in", "t f f")
    col.obj("beat-ms", "expr 60000 / $f1")
    c.wire("cmds", n["tempo"], "tempo-in")
    c.wire("tempo-in", 0, "beat-ms")
    c.obj("bpm", "f 120", 160, 120)  # its outlet sends the transport message: banged once per beat
    c.obj("bpm-start", "f 120", 240, 120)  # the tempo a jam starts at
    c.wire("tempo-in", 1, "bpm", 1)
    c.wire("tempo-in", 1, "bpm-start", 1)
    col.obj("metre-in", "unpack f f")
    col.obj("metre-tee", "t f f f f")
    c.wire("cmds", n["metre"], "metre-in")
    c.wire("metre-in", 0, "metre-tee")
    # transport 1: from beat 0 (only when stopped); transport 0: stop, and say so
    col = Column(c, 20, 300)
    col.obj("transport-in", "sel 0 1")
    c.wire("cmds", n["transport"], "transport-in")
    col.obj("running", "f 0", dx=80)
    col.obj("stopped", "sel 0", dx=80)
    c.wire("transport-in", 1, "running")
    c.wire("running", 0, "stopped")
    c.obj("transport-on", "t b b b b", 20, col.y)
    c.wire("stopped", 0, "transport-on")
    col.y += col.step
    c.msg("beat-zero", "0", 260, col.y)
    c.msg("playing-on", "1", 180, col.y)
    c.obj("dsp-on", "s pd", 100, col.y + 28)
    c.msg("dsp-on-msg", "dsp 1", 100, col.y)
    c.wire("transport-on", 3, "beat-zero")
    c.wire("transport-on", 2, "reset")
    c.wire("transport-on", 1, "playing-on")
    c.wire("transport-on", 1, "dsp-on-msg")
    c.wire("dsp-on-msg", 0, "dsp-on")
    c.obj("transport-off", "t b b", 400, 300)
    c.msg("playing-off", "0", 480, 330)
    c.msg("metro-stop", "stop", 400, 360)
    c.wire("transport-in", 0, "transport-off")
    c.wire("transport-off", 1, "playing-off")
    c.wire("playing-off", 0, "running", 1)
    c.wire("playing-off", 0, "tr-pack", 2)
    c.wire("transport-off", 0, "metro-stop")
    c.wire("transport-off", 0, "bpm")  # one last transport message: playing 0
    c.wire("playing-on", 0, "running", 1)
    c.wire("playing-on", 0, "tr-pack", 2)
    # the beat clock
    col = Column(c, 20, 460)
    col.obj("metro", "metro 500")
    c.wire("transport-on", 0, "metro")
    c.wire("metro-stop", 0, "metro")
    c.wire("beat-ms", 0, "metro", 1)
    col.obj("beat", "f 0")
    col.obj("beat-tee", "t f f f")
    col.obj("beat-next", "+ 1", dx=160)
    c.chain("metro", "beat", "beat-tee")
    c.wire("beat-tee", 2, "beat-next")
    c.wire("beat-next", 0, "beat", 1)
    c.wire("beat-zero", 0, "beat", 1)
    # each beat: /continuo/jam/transport <bpm> <beat> <playing> <beats_per_bar>
    c.obj("tr-beat", "t b f", 240, col.y)
    c.obj("tr-pack", "pack 120 0 0 4", 240, col.y + 56)
    c.obj("tr-words", "list prepend jam-transport", 240, col.y + 84)
    c.obj("tr-trim", "list trim", 240, col.y + 112)
    c.obj("tr-send", "s $0-send", 240, col.y + 140)
    c.wire("beat-tee", 1, "tr-beat")
    c.wire("tr-beat", 1, "tr-pack", 1)
    c.wire("tr-beat", 0, "bpm")
    c.wire("bpm", 0, "tr-pack", 0)
    c.chain("tr-pack", "tr-words", "tr-trim", "tr-send")
    c.wire("metre-tee", 3, "tr-pack", 3)
    # each bar line: play what is loaded for it, then load the next bar's chunk
    col.obj("bar-tee", "t f f")
    col.obj("bar-mod", "mod 4")
    col.obj("bar-line", "sel 0")
    col.obj("bar-beat", "f")
    c.wire("beat-tee", 0, "bar-tee")
    c.wire("bar-tee", 1, "bar-beat", 1)
    c.wire("bar-tee", 0, "bar-mod")
    c.chain("bar-mod", "bar-line", "bar-beat")
    c.wire("metre-tee", 2, "bar-mod", 1)
    col.obj("bar", "t b f f")
    c.wire("bar-beat", 0, "bar")
    # is the spare buffer loaded for this bar line?
    col.obj("bar-check", "t f b")
    col.obj("ready-get", "v $0-ready", dx=100)
    col.obj("is-ready", "==")
    col.obj("ready-yes", "sel 1")
    c.wire("bar", 2, "bar-check")
    c.wire("bar-check", 1, "ready-get")
    c.wire("ready-get", 0, "is-ready", 1)
    c.wire("bar-check", 0, "is-ready")
    c.chain("is-ready", "ready-yes", "play")
    # the next bar line's beat
    c.obj("next-beat", "+ 4", 160, col.y)
    c.obj("next-bar", "f 0", 160, col.y + 28)
    c.wire("bar", 1, "next-beat")
    c.wire("metre-tee", 1, "next-beat", 1)
    c.wire("next-beat", 0, "next-bar", 1)
    c.wire("bar", 0, "next-bar")
    c.wire("metre-tee", 0, "bpb-start", 1)
    c.obj("bpb-start", "f 4", 320, 120)


def jam_player(c: Canvas) -> None:
    """Chunks are queued in [text define $0-jamq] (a line each: bar start_beat prompt_id held seconds path); the
    spare one of two buffers (arrays $0-ja-l/r, $0-jb-l/r) is loaded with the next bar line's chunk when it comes or
    at the bar line before, and started at its bar line by [vline~] (sample-exact in logical time, and at the file's
    own rate: the index runs from 0 to its frames over its seconds) into [tabread4~], gated off at its end."""
    c.obj("queue", "text define $0-jamq", 700, 20)
    c.obj("reset", "t b b b b", 700, 60)
    c.msg("queue-clear", "clear", 700, 90)
    c.msg("reset-ready", "-1", 800, 90)
    c.msg("reset-spare", "0", 860, 90)
    c.obj("reset-ready-v", "v $0-ready", 800, 120)
    c.obj("reset-spare-v", "v $0-spare", 880, 120)
    c.wire("reset", 2, "queue-clear")
    c.wire("queue-clear", 0, "queue")
    c.wire("reset", 1, "reset-ready")
    c.wire("reset-ready", 0, "reset-ready-v")
    c.wire("reset", 0, "reset-spare")
    c.wire("reset-spare", 0, "reset-spare-v")
    c.msg("reset-last", "1e+09", 940, 90)  # no stop yet: every bar may sound
    c.obj("reset-last-v", "v $0-last", 940, 120)
    c.wire("reset", 3, "reset-last")
    c.wire("reset-last", 0, "reset-last-v")
    # a chunk of the patch's jam: queued, then the next bar line's looked for
    c.obj("jamin", "r $0-jamin", 700, 160)
    c.obj("jam-kinds", "route chunk state scheduled", 700, 190)
    c.wire("jamin", 0, "jam-kinds")
    chunk = ours(c, "chunk", 0, 700, 220)
    c.obj("chunk-fields", "unpack f f f f f f s s f f", 700, 340)
    c.obj("chunk-line", "pack f f f f f s", 700, 370)
    c.wire(chunk, 0, "chunk-fields")
    for outlet, inlet in ((0, 0), (1, 1), (4, 2), (5, 3), (8, 4), (6, 5)):  # bar (hot) comes last
        c.wire("chunk-fields", outlet, "chunk-line", inlet)
    c.obj("chunk-tee", "t b a a", 700, 400)
    c.obj("queue-add", "text insert $0-jamq 1e+06", 820, 430)
    c.wire("chunk-line", 0, "chunk-tee")
    c.wire("chunk-tee", 2, "queue-add")
    to_status(c, "chunk-said", "jam chunk", "chunk-tee", 1000, 430, outlet=1)
    c.wire("chunk-tee", 0, "next-bar")
    state = ours(c, "state", 1, 1000, 220)
    to_status(c, "state-said", "jam state", state, 1000, 340)
    # stopping <bar>: that bar is the last to sound (the jam stops at the end of the bar playing); a later one
    # already loaded in the spare buffer is unreadied, later ones in the queue are never loaded (see load-gate)
    c.obj("stopping-trim", "list trim", 1100, 250)  # "stopping <bar> ...": a message [route] reads by its selector
    c.obj("stopping", "route stopping", 1180, 250)
    c.obj("stopping-bar", "list split 1", 1100, 280)
    c.obj("stopping-tee", "t b f", 1100, 310)
    c.obj("stopping-last", "v $0-last", 1200, 340)
    c.obj("stopping-loaded", "v $0-loaded", 1100, 370)
    c.obj("stopping-later", "> 0", 1100, 400)
    c.obj("stopping-drop", "sel 1", 1100, 430)
    c.msg("stopping-unready", "-1", 1100, 460)
    c.obj("stopping-unready-v", "v $0-ready", 1100, 490)
    c.wire(state, 0, "stopping-trim")
    c.wire("stopping-trim", 0, "stopping")
    c.chain("stopping", "stopping-bar", "stopping-tee")
    c.wire("stopping-tee", 1, "stopping-last")
    c.wire("stopping-last", 0, "stopping-later", 1)
    c.wire("stopping-tee", 0, "stopping-loaded")
    c.chain("stopping-loaded", "stopping-later", "stopping-drop", "stopping-unready", "stopping-unready-v")
    scheduled = ours(c, "scheduled", 2, 1200, 220)
    to_status(c, "scheduled-said", "jam scheduled", scheduled, 1200, 340)
    # prepare: when the spare buffer does not hold the next bar line's chunk, find it in the queue and load it
    col = Column(c, 700, 500)
    col.obj("prep", "t f f b")
    col.obj("prep-ready", "v $0-ready", dx=140)
    col.obj("prep-differs", "!=")
    col.obj("prep-go", "sel 1")
    col.obj("prep-key", "f")
    col.obj("search", "text search $0-jamq 1")
    col.obj("found", "moses 0")
    col.obj("found-tee", "t f f", dx=60)
    col.obj("found-get", "text get $0-jamq", dx=60)
    c.obj("found-delete", "text delete $0-jamq", 900, col.y)
    c.wire("next-bar", 0, "prep")
    c.wire("prep", 2, "prep-ready")
    c.wire("prep-ready", 0, "prep-differs", 1)
    c.wire("prep", 1, "prep-key", 1)
    c.wire("prep", 0, "prep-differs")
    c.chain("prep-differs", "prep-go", "prep-key", "search", "found")
    c.wire("found", 1, "found-tee")
    c.wire("found-tee", 1, "found-get")
    c.wire("found-tee", 0, "found-delete")
    # a bar past the stop's last bar is dropped, never loaded
    col.obj("load-gate-tee", "t a a", dx=60)
    c.obj("load-gate-bar", "list split 1", 900, col.y)
    c.obj("load-gate-get", "t f b", 900, col.y + 28)
    c.obj("load-gate-last", "v $0-last", 1000, col.y + 56)
    c.obj("load-gate-cmp", "<=", 900, col.y + 84)
    col.obj("load-gate", "spigot", dx=60)
    c.wire("found-get", 0, "load-gate-tee")
    c.wire("load-gate-tee", 1, "load-gate-bar")
    c.chain("load-gate-bar", "load-gate-get")
    c.wire("load-gate-get", 1, "load-gate-last")
    c.wire("load-gate-last", 0, "load-gate-cmp", 1)
    c.wire("load-gate-get", 0, "load-gate-cmp")
    c.wire("load-gate-cmp", 0, "load-gate", 1)
    c.wire("load-gate-tee", 0, "load-gate")
    # the line goes to the spare buffer
    col.obj("load", "t a b", dx=60)
    col.obj("load-spare", "v $0-spare", dx=200)
    col.obj("load-tag", "list prepend", dx=60)
    col.obj("load-which", "route 0 1", dx=60)
    c.wire("load-gate", 0, "load")
    c.wire("load", 1, "load-spare")
    c.wire("load-spare", 0, "load-tag", 1)
    c.wire("load", 0, "load-tag")
    c.wire("load-tag", 0, "load-which")
    # the bar line's play: the spare buffer starts, the other becomes the spare
    c.obj("play", "t b b", 20, 1000)
    c.msg("play-unready", "-1", 120, 1030)
    c.obj("play-unready-v", "v $0-ready", 120, 1060)
    c.obj("play-spare", "v $0-spare", 20, 1030)
    c.obj("play-tee", "t f f", 20, 1060)
    c.obj("play-flip", "== 0", 100, 1090)
    c.obj("play-flip-v", "v $0-spare", 100, 1120)
    c.obj("play-which", "sel 0 1", 20, 1090)
    c.wire("play", 1, "play-unready")
    c.wire("play-unready", 0, "play-unready-v")
    c.wire("play", 0, "play-spare")
    c.wire("play-spare", 0, "play-tee")
    c.wire("play-tee", 1, "play-flip")
    c.wire("play-flip", 0, "play-flip-v")
    c.wire("play-tee", 0, "play-which")
    for index, name in enumerate("ab"):
        jam_buffer(c, name, index, 700 + 300 * index, 820)
        c.wire("play-which", index, f"info-{name}")


def jam_buffer(c: Canvas, name: str, index: int, x: int, y: int) -> None:
    """One of the two buffers: loading a queue line into its arrays, and playing it from its bar line."""
    col = Column(c, x, y)
    col.obj(f"ld-{name}", "list split 5")
    c.wire("load-which", index, f"ld-{name}")
    col.obj(f"ld-{name}-path", "t a a", dx=120)
    col.obj(f"ld-{name}-arrays", f"list append $0-j{name}-l $0-j{name}-r", dx=120)
    col.msg(f"ld-{name}-read", "read -resize $1 $2 $3", dx=120)
    col.obj(f"ld-{name}-file", "soundfiler", dx=120)
    c.wire(f"ld-{name}", 1, f"ld-{name}-path")  # the path comes first: the frames are known before the rest
    c.wire(f"ld-{name}-path", 0, f"ld-{name}-arrays")
    c.chain(f"ld-{name}-arrays", f"ld-{name}-read", f"ld-{name}-file")
    # a mono file (MusicGen small and medium): its one channel read into the right array too, so both sides sound
    c.obj(f"ld-{name}-keep", "list", x + 300, col.y - 3 * col.step)
    c.obj(f"ld-{name}-format", "unpack f f f f s", x + 300, col.y - 2 * col.step)
    c.obj(f"ld-{name}-mono", "sel 1", x + 300, col.y - col.step)
    c.obj(f"ld-{name}-right", f"list append $0-j{name}-r", x + 300, col.y)
    c.msg(f"ld-{name}-read-right", "read -resize $1 $2", x + 300, col.y + col.step)
    c.obj(f"ld-{name}-file-right", "soundfiler", x + 300, col.y + 2 * col.step)
    c.wire(f"ld-{name}-path", 1, f"ld-{name}-keep", 1)
    c.wire(f"ld-{name}-file", 1, f"ld-{name}-format")  # sample rate, header size, channels, ...
    c.wire(f"ld-{name}-format", 2, f"ld-{name}-mono")
    c.wire(f"ld-{name}-mono", 0, f"ld-{name}-keep")
    c.chain(f"ld-{name}-keep", f"ld-{name}-right", f"ld-{name}-read-right", f"ld-{name}-file-right")
    col.obj(f"ld-{name}-fields", "unpack f f f f f")
    col.obj(f"ld-{name}-ms", "* 1000", dx=200)
    col.obj(f"ld-{name}-info", "pack f f f f f f")
    c.wire(f"ld-{name}", 0, f"ld-{name}-fields")
    c.wire(f"ld-{name}-fields", 4, f"ld-{name}-ms")
    c.wire(f"ld-{name}-ms", 0, f"ld-{name}-info", 5)
    c.wire(f"ld-{name}-file", 0, f"ld-{name}-info", 4)
    for outlet in (3, 2, 1, 0):
        c.wire(f"ld-{name}-fields", outlet, f"ld-{name}-info", outlet)
    c.obj(f"ld-{name}-ready", "v $0-ready", x + 200, col.y)
    c.wire(f"ld-{name}-fields", 1, f"ld-{name}-ready")  # the start beat: this buffer is ready for its bar line
    c.obj(f"ld-{name}-loaded", "v $0-loaded", x + 300, col.y)
    c.wire(f"ld-{name}-fields", 0, f"ld-{name}-loaded")  # its bar: a stop before it unreadies it
    col.obj(f"info-{name}", "list")
    c.wire(f"ld-{name}-info", 0, f"info-{name}", 1)
    # play: "bar start_beat prompt_id held frames ms"
    col.obj(f"info-{name}-tee", "t a a a")
    c.wire(f"info-{name}", 0, f"info-{name}-tee")
    col.msg(f"idx-{name}-msg", "0, $5 $6")
    c.msg(f"gate-{name}-msg", "1, 0 0 $6", x + 120, col.y - col.step)
    c.wire(f"info-{name}-tee", 2, f"idx-{name}-msg")
    c.wire(f"info-{name}-tee", 1, f"gate-{name}-msg")
    to_status(c, f"played-{name}", "jam playing", f"info-{name}-tee", x + 200, col.y)
    col.obj(f"idx-{name}", "vline~")
    c.obj(f"gate-{name}", "vline~", x + 120, col.y - col.step)
    c.wire(f"idx-{name}-msg", 0, f"idx-{name}")
    c.wire(f"gate-{name}-msg", 0, f"gate-{name}")
    for side, dx in (("l", 0), ("r", 120)):
        c.obj(f"rd-{name}-{side}", f"tabread4~ $0-j{name}-{side}", x + dx, col.y)
        c.obj(f"mul-{name}-{side}", "*~", x + dx, col.y + 28)
        c.obj(f"throw-{name}-{side}", f"throw~ $0-j{side}", x + dx, col.y + 56)
        c.wire(f"idx-{name}", 0, f"rd-{name}-{side}")
        c.wire(f"rd-{name}-{side}", 0, f"mul-{name}-{side}")
        c.wire(f"gate-{name}", 0, f"mul-{name}-{side}", 1)
        c.wire(f"mul-{name}-{side}", 0, f"throw-{name}-{side}")
        c.add(f"array-{name}-{side}", "graph", f"$0-j{name}-{side} 100", x + dx * 3, col.y + 100)


def jam_requests(c: Canvas, n: dict[str, int]) -> None:
    """jam <prompt words>: a new jam id (the job ids' rules), the queue cleared, the transport started (when
    stopped), then /continuo/jam/start <id> <prompt> bpm <bpm> beats_per_bar <n> clock host behind_ok <0|1>
    preset <the patch's preset>. jamstop, jamprompt
    <words>, jamset <name> <number>, jambank save|recall <slot>: /continuo/jam/stop, control and bank of that jam."""
    col = Column(c, 20, 1200)
    join_words(c, col, "jam", "cmds", n["jam"], "jam-go", 0)
    col.obj("jam-go", "t b b b b s")
    col.obj("jam-id", "symbol")
    col.obj("jam-id-tee", "t s s")
    c.obj("jam-id-new", "r $0-newid", 200, col.y - 2 * col.step)
    c.wire("jam-id-new", 0, "jam-id", 1)
    c.obj("jam-newjob", "s $0-newjob", 300, col.y)
    c.obj("jam-id-send", "s $0-jamid", 300, col.y + 28)
    c.msg("jam-transport", "1", 400, col.y)
    c.wire("jam-go", 3, "jam-newjob")
    c.wire("jam-go", 2, "reset")
    c.wire("jam-go", 2, "jam-transport")
    c.wire("jam-transport", 0, "transport-in")
    c.wire("jam-go", 0, "jam-id")
    c.chain("jam-id", "jam-id-tee")
    c.wire("jam-id-tee", 1, "jam-id-send")
    col.obj("start-pack", "pack s s f f f s")
    col.msg("start-msg", "jam-start $1 $2 bpm $3 beats_per_bar $4 clock host behind_ok $5 preset $6")
    col.obj("start-send", "s $0-send")
    c.wire("jam-id-tee", 0, "start-pack")
    c.wire("jam-go", 4, "start-pack", 1)
    c.wire("jam-go", 1, "bpm-start")
    c.wire("jam-go", 1, "bpb-start")
    c.wire("bpm-start", 0, "start-pack", 2)
    c.wire("bpb-start", 0, "start-pack", 3)
    # jamanyway 1: start even where the model cannot keep up (bars held while it catches up); 0 (at load): such a
    # jam is refused before it starts, with the daemon's figures on the error outlet
    c.obj("anyway", "f 0", 400, 1230)
    c.wire("cmds", n["jamanyway"], "anyway", 1)
    c.wire("jam-go", 1, "anyway")
    c.wire("anyway", 0, "start-pack", 4)
    c.obj("jam-preset", "symbol default", 480, 1230)  # the patch's preset (preset <name>), as its jobs use
    c.wire("cmds", n["preset"], "jam-preset", 1)
    c.wire("jam-go", 1, "jam-preset")
    c.wire("jam-preset", 0, "start-pack", 5)
    c.chain("start-pack", "start-msg", "start-send")
    # the jam these act on
    c.obj("cur-id-new", "r $0-jamid", 500, 1200)
    for key, x in (("stop", 500), ("ctl", 640), ("bank", 780)):
        c.obj(f"{key}-id", "symbol", x, 1260)
        c.wire("cur-id-new", 0, f"{key}-id", 1)
    c.msg("stop-msg", "jam-stop $1", 500, 1290)
    c.obj("stop-send", "s $0-send", 500, 1320)
    c.wire("cmds", n["jamstop"], "stop-id")
    c.chain("stop-id", "stop-msg", "stop-send")
    # control: "<name> <value as a symbol>" -> jam-control <id> <name> <value>
    of_the_jam(c, "ctl", "jam-control", 640)
    col = Column(c, 640, 1450)
    join_words(c, col, "jamprompt", "cmds", n["jamprompt"], "prompt-pair", 0)
    col.obj("prompt-pair", "list prepend prompt")
    c.wire("prompt-pair", 0, "ctl-in")
    col.obj("set-fields", "unpack s f")
    col.obj("set-value", "makefilename %g", dx=80)
    col.obj("set-pair", "pack s s")
    c.wire("cmds", n["jamset"], "set-fields")
    c.wire("set-fields", 1, "set-value")
    c.wire("set-value", 0, "set-pair", 1)
    c.wire("set-fields", 0, "set-pair")
    c.wire("set-pair", 0, "ctl-in")
    # bank: save|recall <slot> -> jam-bank <id> <action> <slot>
    of_the_jam(c, "bank", "jam-bank", 780)
    c.wire("cmds", n["jambank"], "bank-in")
    c.obj("level-send", "s $0-jamlevel", 20, 1600)
    c.wire("cmds", n["jamlevel"], "level-send")


def of_the_jam(c: Canvas, key: str, kind: str, x: int) -> None:
    """[<key>-in]: "<args...>" -> "<kind> <the jam's id> <args...>" to the daemon (the id kept in [<key>-id])."""
    col = Column(c, x, 1290)
    col.obj(f"{key}-in", "t a b")
    col.obj(f"{key}-pre", "list prepend")
    col.obj(f"{key}-words", f"list prepend {kind}")
    col.obj(f"{key}-trim", "list trim")
    col.obj(f"{key}-send", "s $0-send")
    c.wire(f"{key}-in", 1, f"{key}-id")
    c.wire(f"{key}-id", 0, f"{key}-pre", 1)
    c.wire(f"{key}-in", 0, f"{key}-pre")
    c.chain(f"{key}-pre", f"{key}-words", f"{key}-trim", f"{key}-send")


def jam() -> Canvas:
    """[pd jam]: the patch's transport and the jam's player (its sound leaves through [throw~ $0-jl] / $0-jr)."""
    c = Canvas(name="jam", size=(1400, 900))
    c.obj("cmd", "r $0-cmd", 20, 20)
    c.obj("cmds", "route " + " ".join(JAM_COMMANDS), 20, 50)
    c.wire("cmd", 0, "cmds")
    n = {name: index for index, name in enumerate(JAM_COMMANDS)}
    jam_transport(c, n)
    jam_player(c)
    jam_requests(c, n)
    return c


CONTROLS = (  # (message box, x, y): what a musician clicks; each goes to [s $0-cmd]
    ("generate warm lo-fi piano", 20, 90), ("variations 4", 230, 90), ("cancel", 340, 90),
    ("continue /path/to/clip.wav", 20, 120), ("stems /path/to/mix.wav drums,bass", 230, 120),
    ("midi /path/to/clip.wav mix", 20, 150),
    ("tempo 92", 20, 180), ("metre 4 4", 100, 180), ("key C minor", 180, 180), ("rate 48000", 280, 180),
    ("bars 8", 20, 210), ("preset default", 80, 210), ("seed 0", 200, 210), ("seed last", 260, 210),
    ("hello", 20, 240), ("connect 127.0.0.1 9000", 80, 240), ("status", 270, 240), ("presets", 330, 240),
    ("play", 20, 520),
)
JAM_CONTROLS = (  # the jam mode's message boxes, below the rest
    ("jam warm lo-fi piano", 20, 960), ("jamstop", 200, 960), ("transport 1", 280, 960), ("transport 0", 370, 960),
    ("jamprompt add strings", 20, 990), ("jamset temperature 1.2", 200, 990), ("jamset keep_loop 2", 380, 990),
    ("jambank save 1", 20, 1020), ("jambank recall 1", 140, 1020), ("jamlevel 0.5", 280, 1020),
)


def main() -> Canvas:
    """The window a musician sees: message boxes, what came back, the arrays; the machinery in [pd osc]."""
    c = Canvas(size=(760, 640))
    c.add("title", "text", "Continuo: click a message. Replies: queue \\, progress \\, errors below. "
          "As an abstraction: [continuo <daemon_port> <reply_port>]", 20, 10)
    c.add("help", "text", "generate <prompt>: new audio. continue <path>: continue a file. variations <n>: of "
          "the last prompt. stems <path> [stems]. midi <path> [mix or stems]: .mid files. A MIDI note generates "
          "the last prompt again.", 20, 40)
    c.obj("inlet", "inlet", 20, 290)
    c.obj("cmd", "s $0-cmd", 20, 330)
    c.wire("inlet", 0, "cmd")
    for n, (text, x, y) in enumerate(CONTROLS):
        c.msg(f"control-{n}", text, x, y)
        c.wire(f"control-{n}", 0, "cmd")
    c.msg("open-continue", "bang", 460, 120)
    c.obj("open-panel", "openpanel", 460, 150)
    c.obj("open-prepend", "list prepend continue", 460, 180)
    c.obj("open-trim", "list trim", 460, 210)
    c.add("open-text", "text", "<- pick a file to continue", 510, 120)
    c.chain("open-continue", "open-panel", "open-prepend", "open-trim", "cmd")
    # what came back
    c.obj("status", "r $0-status", 100, 290)
    c.obj("status-kinds", "route queued progress done", 100, 330)
    c.obj("queued", "unpack f f", 100, 360)
    c.add("queue-box", "floatatom", "4 queue", 100, 390)
    c.obj("progress", "unpack f s", 220, 360)
    c.add("progress-box", "floatatom", "5 progress", 220, 390)
    c.add("stage-box", "symbolatom", "12 stage", 220, 420)
    c.obj("done", "unpack f f f", 380, 360)
    c.add("seed-box", "floatatom", "9 seed", 380, 390)
    c.obj("status-print", "print continuo", 500, 330)
    c.chain("status", "status-kinds", "queued", "queue-box")
    c.wire("status-kinds", 1, "progress")
    c.wire("progress", 0, "progress-box")
    c.wire("progress", 1, "stage-box")
    c.wire("status-kinds", 2, "done")
    c.wire("done", 1, "seed-box")
    c.wire("status", 0, "status-print")
    c.obj("error", "r $0-error", 100, 450)
    c.obj("error-fields", "unpack s s s", 100, 480)
    c.add("code-box", "symbolatom", "12 error", 160, 510)
    c.add("message-box", "symbolatom", "40 message", 300, 510)
    c.obj("error-print", "print continuo-error", 250, 450)
    c.chain("error", "error-fields")
    c.wire("error-fields", 1, "code-box")
    c.wire("error-fields", 2, "message-box")
    c.wire("error", 0, "error-print")
    c.obj("output", "r $0-output", 500, 450)
    c.obj("output-print", "print continuo-output", 500, 480)
    c.chain("output", "output-print")
    # outlets, left to right: outputs, status, errors
    for n, name in enumerate(("output", "status", "error")):
        c.obj(f"outlet-{name}-r", f"r $0-{name}", 600 + 50 * n - 20, 540 + 0 * n)
        c.obj(f"outlet-{name}", "outlet", 600 + 50 * n, 600)
        c.wire(f"outlet-{name}-r", 0, f"outlet-{name}")
    # audition: the last output read into $0-l / $0-r
    c.obj("play", "r $0-play", 80, 520)
    c.obj("play-both", "t b b", 80, 550)
    c.obj("play-l", "tabplay~ $0-l", 80, 580)
    c.obj("play-r", "tabplay~ $0-r", 200, 580)
    c.obj("dac", "dac~", 80, 610)
    c.chain("play", "play-both")
    c.wire("play-both", 1, "play-r")
    c.wire("play-both", 0, "play-l")
    c.wire("play-l", 0, "dac", 0)
    c.wire("play-r", 0, "dac", 1)
    c.add("array-l", "graph", "$0-l 100", 420, 560)
    c.add("array-r", "graph", "$0-r 100", 420, 660)
    # a MIDI note (any channel, note-on) generates the last prompt again
    c.obj("notein", "notein", 620, 290)
    c.obj("stripnote", "stripnote", 620, 320)
    c.obj("note", "t b", 620, 350)
    c.obj("midi", "s $0-midi", 620, 380)
    c.chain("notein", "stripnote", "note", "midi")
    # at load: the session counter and settings, listen, connect, hello, then the context at Pd's rate
    c.obj("load", "loadbang", 20, 700)
    c.obj("load-steps", "t b b b b b", 20, 730)
    c.obj("load-send", "s $0-load", 300, 760)
    c.obj("reply-arg", "f $2", 230, 760)
    c.obj("reply-default", "sel 0", 230, 790)
    c.msg("reply-9001", "9001", 230, 820)
    c.msg("listen-msg", "listen $1", 230, 850)
    c.obj("daemon-arg", "f $1", 130, 760)
    c.obj("daemon-default", "sel 0", 130, 790)
    c.msg("daemon-9000", "9000", 130, 820)
    c.msg("connect-msg", "connect 127.0.0.1 $1", 130, 850)
    c.msg("hello-msg", "hello", 70, 880)
    c.obj("samplerate", "samplerate~", 20, 760)
    c.obj("rate-msg", "list prepend rate", 20, 790)
    c.wire("load", 0, "load-steps")
    c.wire("load-steps", 4, "load-send")
    c.wire("load-steps", 3, "reply-arg")
    c.wire("reply-arg", 0, "reply-default")
    c.wire("reply-default", 0, "reply-9001")
    c.wire("reply-default", 1, "listen-msg")
    c.wire("reply-9001", 0, "listen-msg")
    c.wire("load-steps", 2, "daemon-arg")
    c.wire("daemon-arg", 0, "daemon-default")
    c.wire("daemon-default", 0, "daemon-9000")
    c.wire("daemon-default", 1, "connect-msg")
    c.wire("daemon-9000", 0, "connect-msg")
    c.wire("load-steps", 1, "hello-msg")
    c.wire("load-steps", 0, "samplerate")
    c.chain("samplerate", "rate-msg")
    for key in ("listen-msg", "connect-msg", "hello-msg", "rate-msg"):
        c.wire(key, 0, "cmd")
    c.add("machinery", "canvas", "", 500, 700, children=machinery())
    # jam mode: the patch's transport and the jam's bars played at its bar lines ([pd jam]); the sound to dac~ at
    # jamlevel (1 at load) and, unscaled, to two signal outlets (right of the others) for writesf~ or a mixer
    c.add("jam-text", "text", "Jam: jam <prompt> starts one at the patch's tempo and metre (the patch's transport "
          "runs from beat 0 and is sent each beat); each bar arrives as a file and plays at its bar line.", 20, 920)
    for n, (text, x, y) in enumerate(JAM_CONTROLS):
        c.msg(f"jam-control-{n}", text, x, y)
        c.wire(f"jam-control-{n}", 0, "cmd")
    c.add("jam", "canvas", "", 500, 740, children=jam())
    c.obj("jam-level", "r $0-jamlevel", 300, 1060)
    for n, side in enumerate("lr"):
        c.obj(f"jam-catch-{side}", f"catch~ $0-j{side}", 750 + 50 * n - 150, 540)
        c.obj(f"jam-outlet-{side}", "outlet~", 750 + 50 * n, 600)
        c.obj(f"jam-gain-{side}", "*~ 1", 200 + 80 * n, 610)
        c.wire(f"jam-catch-{side}", 0, f"jam-outlet-{side}")
        c.wire(f"jam-catch-{side}", 0, f"jam-gain-{side}")
        c.wire("jam-level", 0, f"jam-gain-{side}", 1)
        c.wire(f"jam-gain-{side}", 0, "dac", n)
    return c


def render() -> str:
    return "\n".join(main().lines()) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv[1:]:
        sys.exit(0 if PATCH.exists() and PATCH.read_text() == text else 1)
    PATCH.write_text(text)
    print(f"wrote {PATCH}")
