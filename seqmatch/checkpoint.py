"""Checkpoints of a training run (``seqmatch.train``): writing, finding, checking and restoring them.

A checkpoint is a directory, ``RUN/checkpoint`` (or ``RUN/bc_warmup``, the BC warm-up snapshot SM
runs start from), holding everything a run needs to continue bit-identically:

* ``trainable.safetensors``: the trainable parameters;
* ``state.pt``: optimizer and LR-schedule state, the torch RNG and the rollout generator's state
  (tensors and plain containers only: loaded with ``torch.load(weights_only=True)``, never a pickle);
* ``state.json``: step, non-finite count, the numpy and ``random`` RNG states, timings, the replay
  buffer, and the run's ``identity`` (what makes two runs the same run, see ``identity``).

Those are process 0's streams and buffer. A checkpoint of a multi-process run also holds those of
every other process (each draws its own rows and rollouts): ``ranks`` in ``state.pt`` (torch RNG
states) and in ``state.json`` (numpy and ``random`` states, replay buffer), one entry per process
1..N-1, so that every process resumes its own streams. A single-process checkpoint has no
``ranks`` and is what it always was.

Writes are atomic (``NAME.tmp`` first, then renamed over ``NAME``, the previous one moved to
``NAME.old`` for the moment of the swap) so that a run killed at any instant, SIGKILL included,
leaves a complete checkpoint, old or new, and never a half-written one to resume from.
A checkpoint resumes only the run that wrote it: any other is stale, and the run starts afresh.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import torch

from seqmatch.runs import WARM_START_KEYS, identity_diff
from seqmatch.runs import identity as identity_of

CHECKPOINT = "checkpoint"
BC_WARMUP = "bc_warmup"


# ------------------------------------------------------------------------------------ identity

def identity(cfg, model: dict, data_sha256: str, tokenizer_sha256: str, num_processes: int) -> dict:
    """``seqmatch.runs.identity`` of a SequenceMatchConfig, the model's description
    (``seqmatch.train.build_policy``) and the digests of the training rows and the tokenizer."""
    return identity_of(dataclasses.asdict(cfg), model, data_sha256, tokenizer_sha256, num_processes)


def stale(state: dict, now: dict) -> list[str]:
    """Why a checkpoint's ``state.json`` is not of the run with identity ``now`` ([] if it is)."""
    saved = state.get("identity")
    if saved is None:
        return ["identity (checkpoint written without one)"]
    return identity_diff(saved, now, now["train"], " -> ")


def warm_start_diff(state: dict, now: dict, bc_warmup_steps: int) -> list[str]:
    """Why a BC run's ``bc_warmup`` snapshot (its ``state.json``) is not the warm-up of the SM run
    with identity ``now`` ([] if it is)."""
    saved = state["identity"]
    diff = identity_diff(saved, now, WARM_START_KEYS, " (BC run) vs ")
    if saved["train"].get("method") != "bc":
        diff.append(f"method: {saved['train'].get('method')!r}, expected 'bc'")
    if state["step"] != bc_warmup_steps:
        diff.append(f"snapshot at step {state['step']}, expected bc_warmup_steps={bc_warmup_steps}")
    return diff


# ------------------------------------------------------------------------------------ RNG streams

def capture_rng(rng, gen: torch.Generator) -> tuple[dict, dict]:
    """The RNG streams of a process: (tensors for state.pt, JSON for state.json)."""
    py = random.getstate()
    return ({"torch_rng": torch.get_rng_state(), "gen_rng": gen.get_state()},
            {"rng": rng.bit_generator.state, "py_random": list(py[1]), "py_random_gauss": py[2]})


def capture_process(rng, gen: torch.Generator, buffer_state: dict) -> dict:
    """What a process > 0 adds to its run's checkpoint: its RNG streams and its replay buffer
    (``save``'s ``ranks`` entries, gathered by process 0)."""
    tensors, js = capture_rng(rng, gen)
    return {"tensors": tensors, "json": {**js, "buffer": buffer_state}}


def restore_rng(blob: dict, state: dict, rng, gen: torch.Generator) -> None:
    """Set the streams ``capture_rng`` saved: torch's global one, ``gen`` and ``rng`` in place, ``random``'s."""
    torch.set_rng_state(blob["torch_rng"])
    gen.set_state(blob["gen_rng"])
    rng.bit_generator.state = state["rng"]
    random.setstate((3, tuple(state["py_random"]), state["py_random_gauss"]))


# ------------------------------------------------------------------------------------ write and read

def trainable_state(model) -> dict:
    """The trainable parameters of an (unwrapped) model, on CPU."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save(final: Path, *, model, optimizer, scheduler, rng, gen: torch.Generator, progress: dict,
         identity: dict, ranks: list[dict] | None = None) -> None:
    """Write a checkpoint to directory ``final`` atomically. ``progress``: the Trainer's ``step``,
    ``nonfinite``, ``last_sample_step``, ``grad_times``, ``sample_times`` and ``buffer`` (the replay
    buffer's state_dict). ``ranks``: ``capture_process`` of processes 1..N-1 of a multi-process run
    (None or empty: a single-process checkpoint). One writer per run directory."""
    from safetensors.torch import save_file

    final = Path(final)
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    rng_tensors, rng_json = capture_rng(rng, gen)
    blob = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **rng_tensors}
    rest = {k: progress[k] for k in ("last_sample_step", "grad_times", "sample_times", "buffer")}
    state = {"step": progress["step"], "nonfinite": progress["nonfinite"], **rng_json, **rest,
             "identity": identity}
    if ranks:
        blob["ranks"] = [r["tensors"] for r in ranks]
        state["ranks"] = [r["json"] for r in ranks]
    torch.save(blob, tmp / "state.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def recover(final: Path) -> None:
    """A run killed between ``save``'s two renames left its checkpoint at ``NAME.old``: move it back."""
    old = final.with_name(final.name + ".old")
    if not final.exists() and old.exists():
        old.rename(final)


def read_state(final: Path) -> dict | None:
    """A checkpoint's ``state.json`` (None when there is no checkpoint)."""
    path = Path(final) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def remove(final: Path) -> None:
    shutil.rmtree(final)


def restore(final: Path, state: dict, *, model, optimizer, scheduler, rng, gen: torch.Generator,
            rank: int = 0) -> dict | None:
    """Load checkpoint ``final`` (``state``: its ``state.json``, ``read_state``): weights into the
    unwrapped ``model``, optimizer and schedule state, and process ``rank``'s RNG streams when the
    checkpoint holds them (always process 0's; the others' when a multi-process run wrote it).
    Returns that process's replay-buffer state (None, streams untouched, when the checkpoint lacks
    the process: one of an older seqmatch). ``state``'s other progress fields are the caller's."""
    from safetensors.torch import load_file

    final = Path(final)
    missing = model.load_state_dict(load_file(str(final / "trainable.safetensors")), strict=False)
    if missing.unexpected_keys:
        raise RuntimeError(f"{final}: checkpoint does not match the model: {missing.unexpected_keys[:3]}")
    blob = torch.load(final / "state.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    if rank == 0:
        restore_rng(blob, state, rng, gen)
        return state["buffer"]
    if len(state.get("ranks") or []) < rank or len(blob.get("ranks") or []) < rank:
        return None
    restore_rng(blob["ranks"][rank - 1], state["ranks"][rank - 1], rng, gen)
    return state["ranks"][rank - 1]["buffer"]
