"""What ``seqmatch.train`` does across processes: the world-size check, the step record reduced
over processes, each process's RNG streams and replay buffer gathered for the checkpoint, and the
weights compared across processes at the end. With one process every function here is a no-op
(returns its input, or None), so single-process runs are unchanged.
"""

from __future__ import annotations

import hashlib
import os

import torch

# step-record fields summed over processes (the rest: mean; MAX_FIELDS: max); tokens_per_s is then
# the step's tokens over its slowest process's time
SUM_FIELDS = ("tokens",)
MAX_FIELDS = ("grad_time", "sample_time")
KEEP_FIELDS = ("step",)


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


def reduce_record(rec: dict, accel) -> dict:
    """A step record reduced over processes: every numeric field (bools and non-numbers stay as
    they are) averaged, the SUM_FIELDS summed, the MAX_FIELDS maxed; ``step`` kept. Every process
    must call it with the same keys. One process: ``rec`` itself."""
    if accel.num_processes == 1:
        return rec
    keys = sorted(k for k, v in rec.items()
                  if k not in KEEP_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool))
    if not keys:
        return rec
    vals = torch.tensor([float(rec[k]) for k in keys], dtype=torch.float64, device=accel.device)
    total = accel.reduce(vals.clone(), reduction="sum")
    top = vals.clone()
    torch.distributed.all_reduce(top, op=torch.distributed.ReduceOp.MAX)
    out = dict(rec)
    n = accel.num_processes
    for i, k in enumerate(keys):
        v = float(top[i]) if k in MAX_FIELDS else float(total[i]) if k in SUM_FIELDS else float(total[i]) / n
        out[k] = int(v) if isinstance(rec[k], int) and v == int(v) else v
    if "tokens" in out and "grad_time" in out and "tokens_per_s" in out:
        out["tokens_per_s"] = out["tokens"] / max(out["grad_time"], 1e-9)
    return out


def gather(accel, obj):
    """[obj of process 0, obj of process 1, ...] on every process; None with one process."""
    if accel.num_processes == 1:
        return None
    out = [None] * accel.num_processes
    torch.distributed.all_gather_object(out, obj)
    return out


def weights_sha256(model) -> str:
    """A digest of a model's trainable parameters (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad:
            t = p.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_same_weights(accel, model) -> list[str] | None:
    """Every process's weights digest (None with one process); RuntimeError if they differ (DDP
    keeps the processes' weights equal: a difference means the processes trained apart)."""
    digests = gather(accel, weights_sha256(model))
    if digests is not None and len(set(digests)) > 1:
        raise RuntimeError(f"the processes' weights differ at the end of training: {digests}")
    return digests
