"""`continuo train-style DIR --name my-band`: a style adapter from a folder of recordings.

Where a daemon answers at the settings' OSC address, the training is its job (bridge/clients/training.py: its
queue at batch priority, the progress bar from its events, Ctrl-C cancels the job). With `--local`, or when no
daemon answers (said on stderr), bridge/jobs/style_training.py runs in this process with the settings' model,
device and lora_dir: the folder's report (what was used, what was skipped and why), a progress bar (epoch, step,
loss, ETA; one line per tenth when stderr is not a terminal), Ctrl-C cancels between steps. Either way the same
command resumes from the last checkpoint. `--plan` prints the estimate from a short measured run in this process
and writes nothing; for a GPU job on this CPU it adds where else it can run (`where_to_train`: a GPU here, the
daemon the settings name, their Ray cluster, each as configured or how to configure it; training on a cluster
replica is not built, and it says so). `--base-weights` (--local): the frozen model's weights (QLoRA's nf4 on CUDA
by default, inference/runtime/lora_training.py:training_base_weights).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def add_train_commands(commands: argparse._SubParsersAction, add_settings_flags) -> None:
    parser = commands.add_parser(
        "train-style", help="train a style adapter (LoRA) from a folder of your recordings",
        description="continuo train-style ~/my-band-recordings --name my-band --text 'dusty soul drums'. Writes "
                    "<lora_dir>/NAME/ (the adapter and its card); then render with lora NAME. --plan first says "
                    "how long it would take here.")
    parser.add_argument("folder", type=Path, help="the folder of recordings (WAV, FLAC, AIFF, OGG, MP3)")
    parser.add_argument("--name", default="", help="the adapter's name in lora_dir (required unless --plan)")
    parser.add_argument("--text", default="", help="words for your sound; tempo and key heard are added per file")
    parser.add_argument("--plan", action="store_true", help="estimate time and peak memory here; train nothing")
    parser.add_argument("--local", action="store_true",
                        help="train in this process, not as a job of the running daemon (the default when one runs)")
    parser.add_argument("--host", dest="osc_host", default=None,
                        help="the daemon's address, as `continuo generate --host` (the osc_host setting)")
    parser.add_argument("--port", dest="osc_port", default=None,
                        help="the daemon's OSC port, as `continuo generate --port` (the osc_port setting)")
    parser.add_argument("--timeout", type=float, default=7 * 86400.0,
                        help="seconds to wait for the daemon's job (default a week; it goes on after)")
    parser.add_argument("--clip-s", type=float, default=0.0,
                        help="clip length in s (default: the model's window; 30 s for ACE-Step); --local only, as "
                             "--rank, --batch-size, --training-seed, --checkpoint-every and --base-weights")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the clips (default 4)")
    parser.add_argument("--batch-size", type=int, default=2, help="clips per step (default 2)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="AdamW's (default 1e-4)")
    parser.add_argument("--training-seed", type=int, default=0, help="seed of the adapter's start and the order")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (default 50)")
    parser.add_argument("--base-weights", default="auto",
                        help="the frozen model's weights: auto (QLoRA's 4-bit nf4 on CUDA with bitsandbytes, else "
                             "fp32), fp32, bf16 (autocast), bnb-nf4")
    add_settings_flags(parser)


def request_from_args(args: argparse.Namespace):
    from bridge.jobs.style_training import StyleRequest  # torch comes with it: not when the parser is built

    return StyleRequest(folder=args.folder, name=args.name, text=args.text, clip_s=args.clip_s, rank=args.rank,
                        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                        seed=args.training_seed, checkpoint_every=args.checkpoint_every,
                        base_weights=args.base_weights)


def run_train_style(args: argparse.Namespace, settings) -> int:
    from bridge.clients.progress import TrainingBar
    from bridge.clients.training import daemon_address, run_style_job
    from bridge.errors import BadRequest
    from bridge.jobs.style_training import plan_style, train_style
    from inference.errors import Cancelled
    from inference.loading import resolve_model

    request = request_from_args(args)
    if not args.plan and not request.name:
        raise BadRequest("train-style needs --name NAME (the adapter's name in lora_dir), or --plan")
    if not args.plan and not args.local:
        status = run_style_job(args, settings)
        if status is not None:
            return status
        host, port = daemon_address(settings)
        print(f"continuo: no daemon answers at {host}:{port}: training in this process (start `continuo serve` to "
              "queue it there instead; --local skips asking)", file=sys.stderr, flush=True)
    source = resolve_model(settings.model, tiny_dir=settings.smoke_model_dir.expanduser(),
                           allow_tiny_fallback=settings.allow_smoke_model)
    device = "cpu" if settings.device == "auto" and not cuda_available() else settings.device
    if args.plan:
        plan = plan_style(request, model_dir=source.path, device=device)
        if plan.gpu_job:
            plan.elsewhere = tuple(where_to_train(settings, request))
        print(plan.describe())
        return 0
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    bar = TrainingBar(file=sys.stderr)
    try:
        target = train_style(request, model_dir=source.path, lora_dir=settings.resolved_lora_dir, device=device,
                             on_report=print, on_progress=bar.update, should_cancel=cancel.is_set)
    except Cancelled as error:
        bar.close()
        print(f"continuo: {error}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    print(f"adapter written to {target} (card: {target / 'card.json'}); render with lora {request.name}")
    return 0


def where_to_train(settings, request) -> list[str]:
    """Where a GPU job planned on this CPU can run instead, from the settings: a GPU here, the daemon they name
    (which trains on its own device), the Ray cluster they name. Training on a cluster replica is not built (the
    replicas take renders; a train_style job sent to a --cluster gateway trains in the gateway's process): said so,
    with what to do. Where a place is not configured, how to configure it."""
    from bridge.clients.training import daemon_address
    from bridge.cluster.spec import parse_cluster
    from bridge.errors import ConfigError
    from bridge.settings import is_loopback

    folder, name = request.folder, request.name or "NAME"
    host, port = daemon_address(settings)
    lines = [f"a CUDA GPU on this machine: none found (device {settings.device}); where one is, `continuo "
             f"train-style {folder} --name {name} --local` trains on it (device auto takes CUDA)"]
    if is_loopback(host):
        lines.append(f"a daemon on a GPU machine: the settings name the daemon on this machine ({host}:{port}), "
                     "which would train on this CPU too; to queue it on a GPU machine's daemon, give its address: "
                     f"`continuo train-style {folder} --name {name} --host GPU-HOST --port PORT` (or osc_host and "
                     "osc_port in the config file), with the folder under that daemon's input roots")
    else:
        lines.append(f"the daemon the settings name ({host}:{port}): `continuo train-style {folder} --name {name}` "
                     "(no --local) queues it there, where it trains on that daemon's device (`continuo doctor` on "
                     "that machine says whether it has a GPU); the folder must be under its input roots")
    try:
        cluster = parse_cluster(settings.cluster)
    except ConfigError as error:
        cluster, lines = None, [*lines, f"the cluster setting is not valid: {error.message}"]
    if cluster is not None and cluster.local:
        lines.append(f"the cluster setting ({cluster.text}) starts Ray replicas on this machine, on this CPU; a "
                     "cluster with GPU nodes (`--cluster ray://HOST:PORT`) does not train on its replicas either: "
                     "sending a training job to a replica is not built. Run `continuo train-style --local` on a "
                     "GPU node and copy the adapter into lora_dir")
    elif cluster is not None:
        lines.append(f"the Ray cluster the settings name ({cluster.text}): its replicas take renders only; sending "
                     "a training job to a replica is not built (a train_style job sent to a `--cluster` gateway "
                     "trains in the gateway's own process, on its device). Instead, on one of the cluster's GPU "
                     f"nodes (Continuo is installed on each), run `continuo train-style {folder} --name {name} "
                     f"--local`, then copy its lora_dir/{name} into this daemon's lora_dir "
                     f"({settings.resolved_lora_dir})")
    elif settings.cluster.strip() == "":
        lines.append("a Ray cluster: none configured (the cluster setting, e.g. `continuo serve --cluster "
                     "ray://HOST:PORT`); even with one, training on a replica is not built: run `continuo "
                     "train-style --local` on a GPU node of the cluster and copy the adapter into lora_dir")
    return lines


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
