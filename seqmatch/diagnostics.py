"""Measurements of a trained run's SM gradient estimators (README "How the objective is implemented").

    python -m seqmatch.diagnostics estimators RUN_DIR [--batches 32] [--out FILE.json]

Restores the run's final checkpoint (weights, replay buffer, RNG streams) and, on ``--batches``
fresh batches drawn as the trainer draws them (data rows beside replayed rollouts), computes the
gradient of L_SM under each initial-state estimator (``data`` and ``plugin``) and of BC. Prints,
per estimator: the mean gradient's norm and its cosine with the mean BC gradient, the per-batch
gradient variance (mean squared distance to the mean gradient, summed over parameters), and the
mean norm of the plug-in residue's gradient. Nothing is written into the run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch


def estimator_gradients(run_dir: str, n_batches: int = 32) -> dict:
    from seqmatch import checkpoint
    from seqmatch.train import from_run_config, load_run_config

    run = Path(run_dir)
    cfg = load_run_config(str(run / "run_config.json"))
    state = checkpoint.read_state(run / checkpoint.CHECKPOINT)
    if state is None:
        raise ValueError(f"{run}: no checkpoint to measure")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = from_run_config({"train": {**cfg["train"], "output_dir": tmp, "warm_start": ""},
                                   "model": cfg["model"]})
        trainer._restore(run / checkpoint.CHECKPOINT, state)
        if len(trainer.buffer) == 0:
            raise ValueError(f"{run}: the checkpoint's replay buffer is empty (not an SM run past its warm-up)")
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        grads: dict[str, list[torch.Tensor]] = {"bc": [], "data": [], "plugin": []}
        residue_norms = []
        L = trainer.losses
        for i in range(n_batches):  # i: fresh replay rows for each batch (the replay stream is per step)
            batch = trainer.make_batch(trainer.cfg.per_device_train_batch_size, trainer.model_rows, noised=True,
                                       micro=i)
            logits = trainer.model(**batch.model_inputs()).logits.float()
            outs = {name: L.sequence_match_loss_from_batch(logits, batch, **trainer.sm_kwargs(initial_value=name))
                    for name in ("data", "plugin")}
            losses = {"bc": outs["data"]["bc"], "data": outs["data"]["loss"], "plugin": outs["plugin"]["loss"]}
            for i, (name, loss) in enumerate(losses.items()):
                g = torch.autograd.grad(loss, params, retain_graph=i < 2, allow_unused=True)
                grads[name].append(torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                              for x, p in zip(g, params)]))
            residue_norms.append(float((grads["plugin"][-1] - grads["data"][-1]).norm()))
    bc_mean = torch.stack(grads["bc"]).mean(0)
    out = {"run": str(run), "step": state["step"], "batches": n_batches,
           "initial_value_trained": cfg["train"].get("initial_value", "data"),
           "residue_grad_norm_mean": sum(residue_norms) / len(residue_norms)}
    for name, gs in grads.items():
        G = torch.stack(gs)
        mean = G.mean(0)
        out[name] = {"mean_grad_norm": float(mean.norm()),
                     "per_batch_grad_norm": float(G.norm(dim=1).mean()),
                     "variance": float(((G - mean) ** 2).sum(1).mean()),
                     "cos_mean_with_bc_mean": float(torch.nn.functional.cosine_similarity(mean, bc_mean, dim=0))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seqmatch.diagnostics", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    est = sub.add_parser("estimators", help="gradient variance of the initial-state estimators on a trained SM run")
    est.add_argument("run_dir")
    est.add_argument("--batches", type=int, default=32)
    est.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    try:
        res = estimator_gradients(args.run_dir, args.batches)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        from seqmatch.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
