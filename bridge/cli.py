"""The `continuo` command: serve; generate, continue, variations, stems, status; prune, trash; send, model, doctor,
keys, bench; analyze, midi (on this machine, bridge/tools/listen.py); train-style (on this machine,
bridge/tools/train_style.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bridge import __version__
from bridge.errors import BridgeError
from bridge.settings import env_name, field_type, load_settings, numeric_fields, setting_fields, value_meanings

log = logging.getLogger("continuo")


# libgomp's spin before a waiting OpenMP thread sleeps (its default is 300000 spins with OMP_WAIT_POLICY unset)
OPENMP_SPIN_COUNT = "10000"


def limit_openmp_spin(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Set GOMP_SPINCOUNT to OPENMP_SPIN_COUNT unless the user set it or OMP_WAIT_POLICY; True where it set it.

    Why (issue 24, 2026-12-07, 2 cores AMD EPYC, `continuo bench step --quick --threads 2`, ms per musicgen-small
    int4 step): with two busy processes on the cores (a DAW playing), libgomp's default spin-wait at each of the
    ~200 parallel regions a step holds the first thread while the second waits for a core: 268 ms a step (int8 340),
    against 14.1-14.4 quiet. OMP_WAIT_POLICY=PASSIVE cuts the loaded step to 24 ms but costs 25-30 ms quiet (a wake
    per region). A spin count of 10000 keeps the quiet step (14.7) and brings the loaded one to 48 ms; 100000 was
    18.2 quiet and 60 loaded. It must be set before torch loads libgomp, so the command sets it first thing; Ray
    replicas the daemon starts inherit it."""
    if "GOMP_SPINCOUNT" in environ or "OMP_WAIT_POLICY" in environ:
        return False
    environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
    return True


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; defaults stay None so 'not given' is visible."""
    parser.add_argument("--config", type=Path, help=f"TOML settings file (also ${env_name('config')})")
    numbers = numeric_fields()
    for f in setting_fields():
        flag = "--" + f.name.replace("_", "-")
        kind = field_type(f)
        values = f"; takes {value_meanings(f)}" if f in numbers else ""
        helptext = f"{f.metadata['help']} (env {env_name(f.name)}; default {f.default!r}{values})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif f.name == "input_roots":
            parser.add_argument(flag, nargs="+", default=None, metavar="DIR", help=helptext)
        else:
            parser.add_argument(flag, default=None, help=helptext, metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="continuo", description="Generative-music daemon for your DAW.")
    parser.add_argument("--version", action="version", version=f"continuo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the daemon (OSC on 127.0.0.1:9000 by default)")
    add_settings_flags(serve)

    send = commands.add_parser("send", help="send one OSC message to the daemon and print the replies")
    send.add_argument("address", help="e.g. /continuo/generate")
    send.add_argument("args", nargs="*", help="arguments: 8 is an int, 8.0 a float, anything else a string; "
                                              "prefix s: to force a string (s:8)")
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=9000)
    send.add_argument("--transport", choices=["udp", "tcp", "zmq"], default="udp",
                      help="OSC over UDP or TCP (--port), or ZeroMQ (--zmq-port)")
    send.add_argument("--zmq-port", type=int, default=5570)
    send.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a job to finish")
    send.add_argument("--no-wait", action="store_true", help="send and return without waiting for replies")

    add_job_commands(commands)
    from bridge.clients.jam import add_jam_command

    add_jam_command(commands)
    from bridge.tools.listen import add_listen_commands

    add_listen_commands(commands)
    from bridge.tools.train_style import add_train_commands

    add_train_commands(commands, add_settings_flags)

    model = commands.add_parser("model", help="model tools")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    tiny = model_commands.add_parser("make-tiny", help="build a tiny RANDOM MusicGen checkpoint or ACE-Step "
                                                       "pipeline (noise, for tests)")
    tiny.add_argument("dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--stereo", action="store_true")
    tiny.add_argument("--melody", action="store_true", help="a MusicGen-melody checkpoint (chroma conditioning)")
    tiny.add_argument("--family", choices=["musicgen", "ace-step"], default="musicgen",
                      help="ace-step: a diffusers AceStepPipeline directory (every component, tokenizer too)")

    doctor = commands.add_parser("doctor", help="what device, accelerations and optional packages are usable here")
    add_settings_flags(doctor)

    keys = commands.add_parser("keys", help="make CURVE key pairs for ZeroMQ on a non-loopback address")
    keys.add_argument("dir", type=Path, help="folder for server.key(_secret), client keys and clients/")
    keys.add_argument("--client", default="client", help="name of the client key pair to make")

    bench = commands.add_parser("bench", help="benchmarks; results are JSON lines")
    bench.add_argument("suite", nargs="?", default="engine",
                       choices=["engine", "daemon", "bridge", "render", "gpu", "throughput", "quality", "soak",
                                "listen", "train", "jam", "step"],
                       help="engine: decode speed, our engine vs transformers; "
                            "daemon: startup and an 8-bar render end to end; "
                            "bridge: per-request overhead of OSC/UDP, OSC/TCP, ZeroMQ vs bare echo servers; "
                            "render: time outside the model (resample, effects, loudness, stems, write); "
                            "gpu: the first-run GPU smoke (versions, parity, speed per mode, compiled decode, "
                            "stems, the GPU tests) against the RTF targets; "
                            "throughput: 1/2/4/8 concurrent jobs on one engine, batched vs one at a time; "
                            "throughput --cluster: in process vs 1 and 2 local Ray Serve replicas; "
                            "quality: lossy modes vs fp32 on the quality harness (KL, top-k overlap, agreement); "
                            "soak: many short jobs of every kind from OSC, TCP, ZeroMQ, HTTP and CLI clients at "
                            "once; the daemon's RSS after warm-up, halfway and at the end (target: within 10 %%); "
                            "listen: tempo, downbeats, metre, key, notes and drums against exact truth, and speed; "
                            "train: LoRA training steps/s and peak memory (musicgen-small and acestep-v15-turbo "
                            "shapes, or --shape; --seconds per clip) against a plain peft loop, and the hours 10 "
                            "minutes of audio would take here; "
                            "jam: a live jam on the tiny model and the musicgen-small shape (random weights): "
                            "underruns per minute, lead, control-to-heard latency, bar-boundary error, tempo heard; "
                            "step: one decode step (CFG batch 2) split into its parts (layers per op class, LM heads, "
                            "arguments, sampling) against the bandwidth floor (random weights; --shape, --threads)")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument("--seconds", type=float, default=None,
                       help="engine: audio per run (default 10; --quick 2); step: audio per profile (default 4)")
    bench.add_argument("--shape", default=None, help="engine: one shape, e.g. musicgen-small or musicgen-medium")
    bench.add_argument("--family", default="musicgen", choices=["musicgen", "ace-step"],
                       help="engine: musicgen (our decoder vs transformers) or ace-step (our AceStepEngine vs "
                            "diffusers' AceStepPipeline call, 1.5 turbo shapes, per-phase time and memory)")
    bench.add_argument("--threads", type=int, default=0, help="engine: torch CPU threads (0: torch's default)")
    bench.add_argument("--device", default="auto", help="engine, gpu: auto, cpu or cuda[:N]")
    bench.add_argument("--dry-run", action="store_true", help="gpu: run the whole plan on the CPU, small (tests it)")
    bench.add_argument("--bars", type=float, default=8.0)
    bench.add_argument("--cluster", action="store_true",
                       help="throughput: in process against 1 and 2 local Ray Serve replicas (tiny model)")
    bench.add_argument("--jobs", type=int, default=None,
                       help="throughput: jobs sent at once (default 8); soak: jobs in all (default 200; --quick 30)")
    bench.add_argument("--duration-s", type=float, default=0.0,
                       help="soak: stop handing out jobs after this many seconds (default 0: when --jobs are done)")
    bench.add_argument("--warmup-jobs", type=int, default=0,
                       help="soak: jobs before the first RSS figure (default: a fifth, at least 20)")
    bench.add_argument("--rows", type=int, default=2,
                       help="step: rows a step decodes (2: one request under CFG; 8: four batched requests); above "
                            "2, the decoder alone at 2 and at this many rows, alternated, over a whole job's "
                            "positions (--seconds of audio)")
    bench.add_argument("--kv-cache", default="auto",
                       help="throughput: the engine's kv_cache (auto, fp32, bf16, mulaw8, int8)")
    bench.add_argument("--real", type=Path, default=None, metavar="DIR",
                       help="listen: also analyse and transcribe the first 30 s of each recording in DIR")
    bench.add_argument("--renders", type=Path, default=None, metavar="DIR",
                       help="listen: sum up the grid checks in the manifests under DIR (a daemon's output root)")
    bench.add_argument("--model", default=None, help="checkpoint for the daemon suite (default: the daemon's "
                                                      "default) and the soak (default: a tiny random smoke model)")
    return parser


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="the daemon's address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="the daemon's OSC port (default 9000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event on stdout")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the job (default 3600)")


def add_job_commands(commands: argparse._SubParsersAction) -> None:
    """generate, continue, variations, stems, status: bridge/clients/commands.py runs them."""
    from bridge.clients.commands import exit_code_table, parse_metre

    def job_parser(name: str, help: str, description: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, description=description, epilog=exit_code_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        add_connection_flags(parser)
        return parser

    def add_job_flags(parser: argparse.ArgumentParser, *, bars: float, preset: bool = True,
                      hears: bool = False) -> None:
        if bars:
            parser.add_argument("--bars", type=float, default=bars, help=f"length in bars (default {bars:g})")
        if preset:
            parser.add_argument("--preset", default="default", help="preset name (default: default)")
        parser.add_argument("--bpm", type=float, default=None,
                            help=("tempo (default: an input file's own when Continuo made it, else the one the "
                                  "daemon hears in it)" if hears else "tempo (default: the daemon's session tempo)"))
        parser.add_argument("--metre", "--time-signature", type=parse_metre, default=None,
                            help="time signature such as 6/8 (default: as --bpm)")
        parser.add_argument("--key", default=None, help="musical key, e.g. 'F# minor' (default: as --bpm; none is "
                                                        "no key, never an invented one)")
        parser.add_argument("--sample-rate", type=int, default=0, help="output rate in Hz (default: the daemon's)")
        parser.add_argument("--job-id", default="", help="your own job id (default: cli-<op>-<time>-<random>)")
        parser.add_argument("--no-wait", action="store_true", help="print the job id once accepted and return")
        if preset:
            parser.add_argument("--seed", type=int, default=None, help="random seed (the done line names the one used)")
            parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                                help="any request setting of docs/osc.md, e.g. --set temperature=0.9 (repeatable)")

    intro = ("Says hello, sets the context, sends the request and waits, with a progress bar; prints the output "
             "paths (stable <job>/<name>.wav; the DAW-friendly names follow on stderr). An input file outside "
             "the daemon's inbox is copied into it first.")
    generate = job_parser("generate", "render new audio from a text prompt",
                          f'continuo generate "warm lo-fi piano" --bars 8 --bpm 92. {intro}')
    generate.add_argument("prompt", help="text prompt, added to the preset's template")
    add_job_flags(generate, bars=8.0)
    generate.add_argument("--stems", dest="stems_setting", default=None, metavar="LIST",
                          help="also write stems, e.g. drums,bass")
    generate.add_argument("--loop", action="store_true", help="fold the tail into the head so the file loops")

    cont = job_parser("continue", "continue an audio file from its end (on the next downbeat)",
                      f'continuo continue clip.wav "dreamy strings" --bars 4. {intro} {POSITIONALS}')
    add_file_and_prompt(cont, "audio file to continue", "text prompt for the continuation")
    add_job_flags(cont, bars=4.0, hears=True)
    cont.add_argument("--stems", dest="stems_setting", default=None, metavar="LIST",
                      help="also write stems, e.g. drums,bass")
    cont.add_argument("--loop", action="store_true", help="fold the tail into the head so the file loops")

    variations = job_parser("variations", "several takes of a prompt, or of an audio file",
                            f'continuo variations "dark techno" --count 4, or continuo variations clip.wav. {intro} '
                            f"{POSITIONALS}")
    add_file_and_prompt(variations, "audio file to vary (default: the prompt alone)", "text prompt")
    add_job_flags(variations, bars=8.0, hears=True)
    variations.add_argument("--count", type=int, default=4, help="number of variations (default 4)")

    stems = job_parser("stems", "split an audio file into stems",
                       f"continuo stems mix.wav --stems drums,bass. {intro}")
    stems.add_argument("input", help="audio file to split")
    stems.add_argument("--stems", default="drums,bass,other,vocals", help="stems to write (default: all four)")
    stems.add_argument("--midi", action="store_true", help="also each stem's notes as a .mid beside it")
    add_job_flags(stems, bars=0.0, preset=False, hears=True)

    status = commands.add_parser("status", help="the daemon's state, model, queue and limits",
                                 epilog=exit_code_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_flags(status)
    from bridge.clients.prune import add_space_commands

    add_space_commands(commands, add_connection_flags)


JOB_COMMANDS = ("generate", "continue", "variations", "stems")
POSITIONALS = ("A word after the verb is the input file when it names a file here or ends in an audio suffix "
               "(.wav, .aif, .flac, ...), else the prompt; --input FILE and --prompt TEXT say which outright.")


def add_file_and_prompt(parser: argparse.ArgumentParser, file_help: str, prompt_help: str) -> None:
    """continue and variations: the file and the prompt, each positional or by flag (bridge/clients/commands.py:
    file_and_prompt tells a positional file from a prompt)."""
    parser.add_argument("words", nargs="*", metavar="FILE_OR_PROMPT", help="the input file and/or the prompt, "
                        "in any order: continuo variations \"dark techno\" or continuo continue clip.wav \"strings\"")
    parser.add_argument("--input", dest="input_file", default=None, metavar="FILE", help=file_help)
    parser.add_argument("--prompt", dest="prompt_setting", default=None, help=prompt_help)


def settings_from_args(args: argparse.Namespace):
    flags = {f.name: getattr(args, f.name, None) for f in setting_fields()}
    return load_settings(flags, config_path=args.config)


def main(argv: list[str] | None = None) -> int:
    limit_openmp_spin()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = settings_from_args(args)
            configure_logging(settings.log_level)
            from bridge.daemon import serve

            return serve(settings)
        configure_logging("INFO")
        if args.command in JOB_COMMANDS:
            from bridge.clients.commands import run_job_command

            return run_job_command(args)
        if args.command == "status":
            from bridge.clients.commands import run_status

            return run_status(args)
        if args.command in ("prune", "trash"):
            from bridge.clients.prune import run_prune, run_trash

            return run_prune(args) if args.command == "prune" else run_trash(args)
        if args.command == "send":
            from bridge.clients.send import run_send

            return run_send(args)
        if args.command == "model" and args.family == "ace-step":
            from inference.acestep.tiny import build_tiny_acestep

            path = build_tiny_acestep(args.dir, seed=args.seed)
            print(f"tiny RANDOM ACE-Step pipeline written to {path}: SMOKE MODEL, it makes NOISE, NOT MUSIC "
                  "(for tests; serve it with --model)")
            return 0
        if args.command == "model":
            from inference.musicgen.tiny import build_tiny_musicgen

            path = build_tiny_musicgen(args.dir, seed=args.seed, channels=2 if args.stereo else 1, melody=args.melody)
            print(f"tiny RANDOM MusicGen checkpoint written to {path} (it makes noise, not music; for tests)")
            return 0
        if args.command == "doctor":
            from bridge.tools.doctor import run_doctor

            return run_doctor(settings_from_args(args))
        if args.command == "keys":
            from bridge.tools.keys import run_keys

            return run_keys(args.dir, args.client)
        if args.command in ("analyze", "midi"):
            from bridge.tools.listen import run_analyze, run_midi

            return run_analyze(args) if args.command == "analyze" else run_midi(args)
        if args.command == "train-style":
            from bridge.tools.train_style import run_train_style

            return run_train_style(args, settings_from_args(args))
        if args.command == "jam":
            from bridge.clients.jam import run_jam

            return run_jam(args)
        if args.command == "bench":
            from bridge.tools.bench import run_bench

            return run_bench(args)
    except BridgeError as exc:
        print(f"continuo: {exc.message}", file=sys.stderr)
        return 2
    except Exception as exc:
        from inference.errors import InferenceError

        if isinstance(exc, InferenceError):
            print(f"continuo: {exc}", file=sys.stderr)
            return 2
        raise
    return 2


if __name__ == "__main__":
    sys.exit(main())
