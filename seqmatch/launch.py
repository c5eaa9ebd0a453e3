"""Launch ``seqmatch.train`` over several processes, on GPUs or on CPU (the workflow's launcher).

    python -m seqmatch.launch --num-processes 2 [--device auto|cpu|cuda] -- --config RUN/run_config.json

runs ``accelerate launch --multi_gpu --num_processes 2 ... -m seqmatch.train --config ...`` after
deciding, on the machine the job runs on (a compute node, not the host that built the DAG), how:

* ``cuda``: one process per CUDA device (NCCL); refused when fewer devices than processes are visible.
* ``cpu``: the processes on CPU (gloo), through ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu``.
  (``accelerate launch --multi_gpu`` without CUDA and without that variable starts N independent
  single-process runs, ``DistributedType.NO``; ``accelerate launch --cpu --num_processes N`` starts
  one process. ``seqmatch.train`` refuses both: its world size differs from ``num_processes``.)
* ``auto`` (default): ``cuda`` when CUDA is available, else ``cpu``.

Each launch takes a free TCP port for its rendezvous, so several multi-process jobs can share a
node. ``accelerate`` is run as ``python -m accelerate.commands.launch`` with this interpreter (its
console script need not be on PATH).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

DEVICES = ("auto", "cpu", "cuda")


def command(num_processes: int, device: str = "auto") -> str:
    """The shell command of a training job (workflow/rules/common.smk ``train_launcher``); the
    run's options follow it (``--config FILE``)."""
    if device not in DEVICES:
        raise ValueError(f"launch device {device!r}: expected one of {DEVICES}")
    if int(num_processes) <= 1:
        return "python -m seqmatch.train"
    return f"python -m seqmatch.launch --num-processes {int(num_processes)} --device {device} --"


def resolve_device(device: str, num_processes: int, cuda_devices: int | None = None) -> str:
    """``cpu`` or ``cuda`` for ``device`` on this machine; ValueError when CUDA is asked for and
    cannot serve ``num_processes`` processes. ``cuda_devices``: visible CUDA devices (default: torch's count)."""
    if device not in DEVICES:
        raise ValueError(f"launch device {device!r}: expected one of {DEVICES}")
    if device == "cpu":
        return "cpu"
    if cuda_devices is None:
        import torch

        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto" and cuda_devices == 0:
        return "cpu"
    if cuda_devices < num_processes:
        raise ValueError(
            f"num_processes={num_processes} on CUDA, but {cuda_devices} CUDA device(s) are visible here "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): request as many GPUs as "
            f"processes (resources.train.gpu), or set train.launch_device: cpu to train on CPU")
    return "cuda"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_argv(num_processes: int, device: str, train_args: list[str], port: int) -> tuple[list[str], dict]:
    """(argv, extra environment) of ``accelerate launch`` for ``resolve_device``'s ``device``."""
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(num_processes), "--num_machines", "1", "--dynamo_backend", "no",
            "--main_process_port", str(port), "-m", "seqmatch.train", *train_args]
    return argv, ({"ACCELERATE_USE_CPU": "1"} if device == "cpu" else {})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m seqmatch.launch", description=__doc__.split("\n\n")[0])
    p.add_argument("--num-processes", type=int, required=True, help="training processes (>= 2)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="cuda: one process per GPU; cpu: processes on CPU (gloo); auto: cuda if available")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the options of seqmatch.train")
    args = p.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if args.num_processes < 2:
        print("error: --num-processes must be >= 2 (one process: python -m seqmatch.train)", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device, args.num_processes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cmd, extra = accelerate_argv(args.num_processes, device, train_args, free_port())
    print(f"seqmatch.launch: {args.num_processes} processes on {device}"
          f"{' (ACCELERATE_USE_CPU=1, gloo)' if device == 'cpu' else ''}", file=sys.stderr, flush=True)
    os.execve(sys.executable, cmd, {**os.environ, **extra})
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
