"""What ``seqmatch.train`` does across processes: the world-size check."""

from __future__ import annotations

import os


def check_world_size(accel, expected: int) -> None:
    """ValueError unless this launch has ``expected`` processes (0: whatever the launch gives) and
    the launcher's WORLD_SIZE agrees with accelerate's: ``accelerate launch --multi_gpu`` on a
    machine without CUDA starts N independent single-process runs (``DistributedType.NO``) that
    would each train the whole run into one directory."""
    n = accel.num_processes
    launched = os.environ.get("WORLD_SIZE")
    hint = ("on a machine without CUDA, run several processes on CPU with ACCELERATE_USE_CPU=1 accelerate "
            "launch --multi_gpu --num_processes N (python -m seqmatch.launch --num-processes N does: the "
            "workflow's launcher)")
    if launched is not None and launched.isdigit() and int(launched) != n:
        raise ValueError(
            f"the launcher started {launched} processes (WORLD_SIZE={launched}) but accelerate runs this one "
            f"as {n} of {n} ({accel.distributed_type}): each would train the whole run on its own into the "
            f"same directory; {hint}")
    if expected and expected != n:
        raise ValueError(
            f"train config: num_processes={expected} but this launch has {n} process(es) "
            f"({accel.distributed_type}); launch {expected} processes (python -m seqmatch.launch "
            f"--num-processes {expected} -- ...), or change num_processes (a run of another process "
            f"count is another run); {hint}")
