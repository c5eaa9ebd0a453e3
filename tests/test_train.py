"""The trainer on a learnable toy task: every method learns, SM's phases, resume, SIGTERM,
non-finite losses."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqmatch.config import SequenceMatchConfig
from seqmatch.train import NonFiniteLossError, SequenceMatchTrainer, load_rows, main

REPO = Path(__file__).resolve().parents[1]
TINY = dict(arch="llama", n_layer=1, n_head=2, d_model=32, d_ff=64, max_position_embeddings=64)


def config(toy, out, **kw):
    base = dict(output_dir=str(out),
                max_steps=40, per_device_train_batch_size=8, learning_rate=3e-3, warmup_steps=2, save_steps=0,
                max_len=16,
                eta=0.1, noise="random", bc_warmup_steps=5, beta_anneal_steps=10, replay_capacity=16,
                replay_reuse=2, gen_batch_size=8, model_rows=4, max_new_tokens=6, alpha=0.5, gamma=0.95,
                mask_prompt=True)
    base.update(kw)
    return SequenceMatchConfig(**base)


def make_trainer(toy, cfg, mcfg):
    """The trainer of the toy task through the Python API (rows in memory, the tokenizer's path)."""
    return SequenceMatchTrainer(model=mcfg, args=cfg, train_dataset=load_rows(str(toy / "train.jsonl")),
                                processing_class=str(toy / "tok"))


def run_file(toy, cfg, mcfg) -> dict:
    """A run config file's content for cfg and mcfg (what the workflow writes)."""
    train = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "model_init_kwargs"}
    return {"train": {**train, "train_file": str(toy / "train.jsonl"), "tokenizer": str(toy / "tok")},
            "model": dataclasses.asdict(mcfg)}


def model_config(**kw):
    from seqmatch.model import ModelConfig

    return ModelConfig(**{**TINY, **kw})


def read_log(out):
    return [json.loads(l) for l in (Path(out) / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["mle", "bc", "ulk", "sm"])
def test_each_method_learns(toy, tmp_path, method):
    s = make_trainer(toy, config(toy, tmp_path, method=method, max_steps=80, learning_rate=1e-2), model_config()).train()
    log = read_log(tmp_path)
    assert len(log) == 80 and s["steps"] == 80
    first = sum(r["ce"] for r in log[:5]) / 5
    last = sum(r["ce"] for r in log[-5:]) / 5
    assert last < 0.6 * first, (method, first, last)
    assert (tmp_path / "model").is_dir() and (tmp_path / "summary.json").is_file()


def test_sm_phases_and_replay_interval(toy, tmp_path):
    from seqmatch.replay import sampling_interval

    cfg = config(toy, tmp_path, method="sm", max_steps=30, bc_warmup_steps=8, beta_anneal_steps=10, beta_final=0.2)
    s = make_trainer(toy, cfg, model_config()).train()
    log = read_log(tmp_path)
    interval = sampling_interval(capacity=16, reuse=2, gen_batch_size=8, model_rows_per_step=4)
    for r in log:
        t = r["step"]
        expect = 1.0 if t < 8 else max(0.2, 1.0 - 0.8 * (t - 8) / 10)
        assert r["beta"] == pytest.approx(expect), t
        assert ("sm_loss" in r) == (t >= 9)  # SM terms enter once beta < 1
    sampled = [r["step"] for r in log if r["sample_time"] > 0]
    # beta is still 1 at step 8 (the anneal starts there), so rollouts start at step 9
    assert sampled == list(range(9, 30, interval)), (sampled, interval)
    sizes = [r["buffer_size"] for r in log]
    assert sizes[8] == 0 and sizes[9] == 8 and max(sizes) == 16
    assert s["grad_steps_per_sample"] == interval and s["sampling_rounds"] == len(sampled)


def test_sm_log_carries_the_diagnostics_and_they_change_nothing(toy, tmp_path):
    """Every SM log line has the loss parts, V at the initial states, the residue, the gradient
    norm before clipping and the clip factor, and the latest rollouts' statistics; every
    grad_diagnostics_every steps the per-part gradient norms and BC cosines. Checked against
    independent computations, and the diagnostics leave the trained weights bit-identical."""
    from seqmatch.actions import apply_backspaces

    kw = dict(method="sm", max_steps=24, bc_warmup_steps=6, beta_anneal_steps=8, max_grad_norm=0.5)
    plain = make_trainer(toy, config(toy, tmp_path / "plain", **kw), model_config())
    plain.train()
    diag = make_trainer(toy, config(toy, tmp_path / "diag", grad_diagnostics_every=3, **kw), model_config())
    diag.train()
    for (name, a), (_, b) in zip(plain.model.named_parameters(), diag.model.named_parameters()):
        assert torch.equal(a, b), name
    log = read_log(tmp_path / "diag")
    sm_lines = [r for r in log if r["beta"] < 1]
    assert sm_lines and all(r["step"] >= 6 for r in sm_lines)
    for r in log:
        assert r["clip_factor"] == pytest.approx(min(1.0, 0.5 / (r["grad_norm"] + 1e-6)), rel=1e-9)
    for r in sm_lines:
        for k in ("ce", "sm_loss", "sm_phi", "sm_regularizer", "sm_residue", "sm_v0_data", "sm_v0_model",
                  "rollout_len", "rollout_bkspc_rate", "rollout_finished", "rollout_accuracy"):
            assert k in r, k
        # the residue is half the gap of the two initial-state means, and it is not in the loss
        assert r["sm_residue"] == pytest.approx(0.5 * (r["sm_v0_data"] - r["sm_v0_model"]), rel=1e-6, abs=1e-9)
        if r["step"] % 3 == 0:
            # the diagnostics' own backward of β L_BC + (1 − β) L_SM against the step's clipped norm
            assert r["gnorm_step"] == pytest.approx(r["grad_norm"], rel=1e-4)
            for k in ("gnorm_bc", "gnorm_sm", "gnorm_regularizer", "gnorm_residue", "gcos_sm_bc",
                      "gcos_residue_bc", "gcos_step_bc"):
                assert k in r, k
            assert -1 <= r["gcos_sm_bc"] <= 1 and r["gnorm_residue"] > 0
        else:
            assert "gnorm_bc" not in r
    # the last line's rollout statistics, recomputed from the replay buffer's latest round
    last = diag.buffer.items()[-8:]
    gen = [it["actions"][it["prompt_len"]:] for it in last]
    assert log[-1]["rollout_len"] == pytest.approx(sum(map(len, gen)) / 8)
    bk = diag.bkspc
    assert log[-1]["rollout_bkspc_rate"] == pytest.approx(sum(a.count(bk) for a in gen) / max(sum(map(len, gen)), 1))
    answers = {tuple(ex.prompt): ex.completion for ex in diag.examples}
    correct = [it["terminal"] and apply_backspaces(it["actions"], bk) == it["actions"][:it["prompt_len"]]
               + answers[tuple(it["actions"][:it["prompt_len"]])] for it in last]
    assert log[-1]["rollout_accuracy"] == pytest.approx(sum(correct) / 8)


def test_nonfinite_loss_is_skipped_then_aborts(toy, tmp_path, monkeypatch):
    real = SequenceMatchTrainer.compute_loss

    def poisoned(self, batch, beta):
        out = real(self, batch, beta)
        if self.step in (3, 4, 5):
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(SequenceMatchTrainer, "compute_loss", poisoned)
    before = None
    tr = make_trainer(toy, config(toy, tmp_path / "a", method="mle", max_steps=8, max_nonfinite=5), model_config())
    for _ in range(3):
        tr.train_step()
    before = {k: v.clone() for k, v in tr.trainable_state().items()}
    rec = tr.train_step()
    assert rec["skipped"] and tr.nonfinite == 1
    after = tr.trainable_state()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no update from a NaN step
    with pytest.raises(NonFiniteLossError, match="step 4"):
        make_trainer(toy, config(toy, tmp_path / "b", method="mle", max_steps=8, max_nonfinite=1), model_config()).train()


def _cli(toy, out, steps=30, every=4, extra=()):
    args = [sys.executable, "-m", "seqmatch.train", "--method", "sm", "--train-file", str(toy / "train.jsonl"),
            "--tokenizer", str(toy / "tok"), "--out-dir", str(out), "--steps", str(steps), "--batch-size", "8",
            "--lr", "3e-3", "--warmup-steps", "2", "--checkpoint-every", str(every), "--max-len", "16",
            "--eta", "0.1", "--bc-warmup-steps", "5", "--beta-anneal-steps", "10", "--replay-capacity", "16",
            "--replay-reuse", "2", "--gen-batch-size", "8", "--model-rows", "4", "--max-new-tokens", "6",
            "--alpha", "0.5", "--gamma", "0.95", "--mask-prompt", "true"]
    for k, v in TINY.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    args += list(extra)  # later flags win
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return args, env


def _wait_for_checkpoint(out, min_step, proc, timeout=120):
    t0 = time.time()
    state = Path(out) / "checkpoint" / "state.json"
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"trainer exited early: {proc.returncode}")
        try:
            if json.loads(state.read_text())["step"] >= min_step:
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


def test_sigkill_and_resume_is_bit_identical(toy, tmp_path):
    from safetensors.torch import load_file

    args, env = _cli(toy, tmp_path / "full")
    subprocess.run(args, env=env, check=True, capture_output=True, cwd=REPO)
    args, env = _cli(toy, tmp_path / "killed")
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(tmp_path / "killed", 12, proc)  # past the BC warm-up: replay buffer in play
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()
    subprocess.run(args, env=env, check=True, capture_output=True, cwd=REPO)
    a = load_file(str(tmp_path / "full" / "checkpoint" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoint" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads((tmp_path / "full" / "summary.json").read_text())
    sb = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert sa["final_loss"] == sb["final_loss"] and sa["steps"] == sb["steps"] == 30
    la, lb = read_log(tmp_path / "full"), read_log(tmp_path / "killed")
    assert [r["step"] for r in lb] == list(range(30))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]


def test_sigterm_checkpoints_and_exits_nonzero(toy, tmp_path):
    args, env = _cli(toy, tmp_path / "t", steps=400, every=0)
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = tmp_path / "t" / "train_log.jsonl"
    t0 = time.time()
    while (not log.exists() or len(log.read_text().splitlines()) < 3) and time.time() - t0 < 120:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    assert rc != 0
    state = json.loads((tmp_path / "t" / "checkpoint" / "state.json").read_text())
    assert 3 <= state["step"] < 400
    assert (tmp_path / "t" / "checkpoint" / "trainable.safetensors").is_file()
    assert not (tmp_path / "t" / "summary.json").exists()


def test_checkpoint_of_a_different_run_is_not_resumed(toy, tmp_path, capsys):
    """A run directory reused with a changed config (Snakemake re-runs a job when its params
    change) starts afresh: it ends equal to a clean run of the new config, not a resumed hybrid."""
    from safetensors.torch import load_file

    common = dict(method="mle", max_steps=12, save_steps=4)
    make_trainer(toy, config(toy, tmp_path / "reused", **common), model_config()).train()
    make_trainer(toy, config(toy, tmp_path / "reused", **{**common, "learning_rate": 1e-3}), model_config()).train()
    err = capsys.readouterr().err
    assert "checkpoint of a different run" in err and "train.learning_rate: 0.003 -> 0.001" in err
    make_trainer(toy, config(toy, tmp_path / "clean", **{**common, "learning_rate": 1e-3}), model_config()).train()
    a = load_file(str(tmp_path / "reused" / "checkpoint" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "clean" / "checkpoint" / "trainable.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_log(tmp_path / "reused")] == list(range(12))
    # a different model architecture too (the case that crashed a resumed load before)
    make_trainer(toy, config(toy, tmp_path / "reused", **{**common, "learning_rate": 1e-3}), model_config(d_ff=32)).train()
    assert "model.d_ff: 64 -> 32" in capsys.readouterr().err


def test_each_process_draws_its_own_rows_and_rollouts(toy, tmp_path, monkeypatch):
    """Under accelerate launch every process runs this code: a shared seed would make every GPU
    train on the same rows. Process 0 keeps the single-process streams."""
    import accelerate

    def streams(rank):
        monkeypatch.setattr(accelerate.Accelerator, "process_index", property(lambda self: rank))
        tr = make_trainer(toy, config(toy, tmp_path / f"r{rank}", method="mle"), model_config())
        return row_indices(tr), torch.randint(0, 10**6, (4,), generator=tr.gen).tolist()

    def row_indices(tr):
        where = {id(ex): i for i, ex in enumerate(tr.examples)}
        return [where[id(ex)] for ex in tr.draw_examples(32)]

    rows0, gen0 = streams(0)
    rows1, gen1 = streams(1)
    monkeypatch.undo()
    single = make_trainer(toy, config(toy, tmp_path / "single", method="mle"), model_config())
    assert row_indices(single) == rows0
    assert torch.randint(0, 10**6, (4,), generator=single.gen).tolist() == gen0
    assert rows1 != rows0 and gen1 != gen0


def test_sm_warm_started_from_the_bc_run_equals_sm_from_scratch(toy, tmp_path):
    """The first bc_warmup_steps of an SM run are the BC run's steps: an SM run started from the
    BC run's bc_warmup/ snapshot ends bit-identical to one that trains its own warm-up, log included,
    and its replay buffer is its own (the BC run's config has no replay capacity): long enough for
    the buffer to reach replay_capacity and drop its oldest rollouts."""
    from safetensors.torch import load_file

    common = dict(max_steps=40, bc_warmup_steps=10, beta_anneal_steps=6, save_steps=0, replay_capacity=16)
    # the workflow's BC run config leaves out the SM-only keys: its replay_capacity is the default
    bc = make_trainer(toy, config(toy, tmp_path / "bc", method="bc", **{**common, "replay_capacity": 1000}),
                      model_config())
    bc.train()
    snap = json.loads((tmp_path / "bc" / "bc_warmup" / "state.json").read_text())
    assert snap["step"] == 10
    make_trainer(toy, config(toy, tmp_path / "scratch", method="sm", **common), model_config()).train()
    warm = make_trainer(toy, config(toy, tmp_path / "warm", method="sm", warm_start=str(tmp_path / "bc"), **common),
                   model_config())
    warm.train()
    a = load_file(str(tmp_path / "scratch" / "checkpoint" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "warm" / "checkpoint" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_log(tmp_path / "scratch"), read_log(tmp_path / "warm")
    assert [r["step"] for r in lb] == list(range(40))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    assert [r["buffer_size"] for r in la] == [r["buffer_size"] for r in lb]
    assert max(r["buffer_size"] for r in lb) == 16 and warm.buffer.evicted > 0  # full, and wrapped
    # the SM steps' timing leaves out the warm-up (BC) steps
    assert json.loads((tmp_path / "warm" / "summary.json").read_text())["grad_step_time_mean"] == \
        pytest.approx(sum(warm.grad_times[12:]) / len(warm.grad_times[12:]))


def test_bc_warmup_job_then_the_bc_and_sm_runs_equal_runs_trained_straight_through(toy, tmp_path):
    """The workflow's split: the bc_warmup job (stop_after_warmup) trains a BC run's first
    bc_warmup_steps and stops with the snapshot and a checkpoint; the BC run then resumes from the
    checkpoint and SM runs start from the snapshot. Both end bit-identical to runs trained straight
    through, logs included, and nothing touches the snapshot again (SM runs may be reading it)."""
    from safetensors.torch import load_file

    common = dict(max_steps=24, bc_warmup_steps=10, beta_anneal_steps=6, save_steps=0)
    make_trainer(toy, config(toy, tmp_path / "bc_ref", method="bc", **common), model_config()).train()
    make_trainer(toy, config(toy, tmp_path / "sm_ref", method="sm", **common), model_config()).train()
    bc, sm = tmp_path / "bc", tmp_path / "sm"

    def warmup_job():
        return make_trainer(toy, config(toy, bc, method="bc", stop_after_warmup=True, **common), model_config()).train()

    done = warmup_job()
    assert done["stopped_after_warmup"] and json.loads((bc / "bc_warmup.json").read_text())["steps"] == 10
    assert not (bc / "summary.json").exists() and not (bc / "model").exists()
    assert [r["step"] for r in read_log(bc)] == list(range(10))
    snap = bc / "bc_warmup" / "state.json"
    stamp = snap.stat().st_mtime_ns
    (bc / "bc_warmup.json").unlink()  # Snakemake reruns the job: done at once, the snapshot untouched
    warmup_job()
    assert (bc / "bc_warmup.json").exists() and snap.stat().st_mtime_ns == stamp
    make_trainer(toy, config(toy, sm, method="sm", warm_start=str(bc), **common), model_config()).train()
    make_trainer(toy, config(toy, bc, method="bc", **common), model_config()).train()
    for ref, run in ((tmp_path / "bc_ref", bc), (tmp_path / "sm_ref", sm)):
        a = load_file(str(ref / "checkpoint" / "trainable.safetensors"))
        b = load_file(str(run / "checkpoint" / "trainable.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), run
        assert [(r["step"], r["loss"]) for r in read_log(ref)] == [(r["step"], r["loss"]) for r in read_log(run)]
    assert snap.stat().st_mtime_ns == stamp
    # the warm-up job once the BC run is done: done at once, from the snapshot; through the CLI too
    (bc / "bc_warmup.json").unlink()
    assert warmup_job()["steps"] == 24 and (bc / "bc_warmup.json").exists()
    (bc / "bc_warmup.json").unlink()
    (bc / "bc_warmup" / "train_log.jsonl").unlink()  # a snapshot of an older seqmatch: no log copy
    job = run_file(toy, config(toy, bc, method="bc", stop_after_warmup=True, **common), model_config())
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert main(["--config", str(tmp_path / "job.json")]) == 0 and (bc / "bc_warmup.json").exists()
    assert [r["step"] for r in read_log(bc / "bc_warmup")] == list(range(10))  # the copy, made here
    assert snap.stat().st_mtime_ns == stamp
    # past the warm-up with no snapshot: one error that says what to do
    import shutil

    shutil.rmtree(bc / "bc_warmup")
    with pytest.raises(ValueError, match=r"past the warm-up, and bc_warmup/ is missing or of another run; delete .*checkpoint"):
        warmup_job()
    with pytest.raises(ValueError, match="stop_after_warmup"):
        config(toy, tmp_path / "x", method="sm", stop_after_warmup=True, **common).validate()


def test_a_finished_sm_run_rerun_with_a_warm_start_restores_its_own_checkpoint(toy, tmp_path):
    """An SM run trained by an older seqmatch without a warm start, now configured with one: the
    changed config makes Snakemake delete summary.json and rerun the job. The run resumes its own
    final checkpoint (warm_start is no part of a run's identity): no step again, the same weights."""
    from safetensors.torch import load_file

    common = dict(max_steps=24, bc_warmup_steps=10, beta_anneal_steps=6, save_steps=0)
    make_trainer(toy, config(toy, tmp_path / "bc", method="bc", **common), model_config()).train()
    make_trainer(toy, config(toy, tmp_path / "sm", method="sm", **common), model_config()).train()
    weights = tmp_path / "sm" / "checkpoint" / "trainable.safetensors"
    before, log = load_file(str(weights)), read_log(tmp_path / "sm")
    summary = json.loads((tmp_path / "sm" / "summary.json").read_text())
    (tmp_path / "sm" / "summary.json").unlink()
    rerun = make_trainer(toy, config(toy, tmp_path / "sm", method="sm", warm_start=str(tmp_path / "bc"), **common),
                    model_config())
    rerun.train()
    after = load_file(str(weights))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert read_log(tmp_path / "sm") == log  # no step trained again
    again = json.loads((tmp_path / "sm" / "summary.json").read_text())
    assert again["config"]["warm_start"] == str(tmp_path / "bc")
    for key in ("steps", "final_loss", "grad_step_time_mean", "sampling_time_mean", "nonfinite_skipped"):
        assert again[key] == summary[key], key


def test_warm_start_from_a_run_that_trained_something_else_is_refused(toy, tmp_path, capsys):
    common = dict(max_steps=16, bc_warmup_steps=6, beta_anneal_steps=4, save_steps=0)
    make_trainer(toy, config(toy, tmp_path / "bc", method="bc", **common), model_config()).train()
    sm = dict(method="sm", warm_start=str(tmp_path / "bc"), **common)
    with pytest.raises(ValueError, match=r"train\.eta: 0\.1 \(BC run\) vs 0\.2"):
        make_trainer(toy, config(toy, tmp_path / "a", **{**sm, "eta": 0.2}), model_config()).train()
    with pytest.raises(ValueError, match=r"model\.d_ff: 64 \(BC run\) vs 32"):
        make_trainer(toy, config(toy, tmp_path / "b", **sm), model_config(d_ff=32)).train()
    # no snapshot (a BC run of an older seqmatch): the SM run trains its own warm-up, and says so
    make_trainer(toy, config(toy, tmp_path / "c", **{**sm, "warm_start": str(tmp_path / "nowhere")}), model_config()).train()
    assert "no BC warm-up snapshot" in capsys.readouterr().err
    assert [r["step"] for r in read_log(tmp_path / "c")] == list(range(16))
    # an SM-only setting may differ: the warm-up does not depend on it
    make_trainer(toy, config(toy, tmp_path / "d", **{**sm, "alpha": 0.1, "divergence": "js"}), model_config()).train()
    assert not (tmp_path / "a" / "summary.json").exists()


def test_bc_run_stopped_at_its_warmup_step_has_written_the_snapshot(toy, tmp_path, monkeypatch):
    """SIGTERM (or a crash) right at step bc_warmup_steps: the run resumes past that step, so the
    snapshot SM runs need must already be on disk."""
    real = SequenceMatchTrainer.train_step

    def step_then_stop(self):
        rec = real(self)
        self._stop = self.step == 6
        return rec

    monkeypatch.setattr(SequenceMatchTrainer, "train_step", step_then_stop)
    cfg = config(toy, tmp_path, method="bc", max_steps=12, bc_warmup_steps=6, save_steps=0)
    with pytest.raises(SystemExit):
        make_trainer(toy, cfg, model_config()).train()
    assert json.loads((tmp_path / "bc_warmup" / "state.json").read_text())["step"] == 6
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 6


def test_cli_refuses_a_mismatched_warm_start_with_exit_2(toy, tmp_path, capsys):
    from seqmatch.train import main

    args, _ = _cli(toy, tmp_path / "bc", steps=12, every=0)
    assert main(args[3:] + ["--method", "bc"]) == 0
    args, _ = _cli(toy, tmp_path / "sm", steps=12, every=0,
                   extra=("--warm-start", str(tmp_path / "bc"), "--lr", "0.001"))
    assert main(args[3:]) == 2
    err = capsys.readouterr().err
    assert "error: warm_start=" in err and "train.learning_rate: 0.003 (BC run) vs 0.001" in err
    assert not (tmp_path / "sm" / "summary.json").exists()


def test_a_run_config_file_trains_the_run_it_names(toy, tmp_path, capsys):
    """`--config FILE` (what the workflow writes: sections train/model, the field names) trains
    exactly the run the same TrainConfig/ModelConfig train through the API; flags override it."""
    import dataclasses

    from safetensors.torch import load_file

    from seqmatch.train import main

    cfg, mcfg = config(toy, tmp_path / "api", method="bc", max_steps=12), model_config()
    make_trainer(toy, cfg, mcfg).train()
    run = run_file(toy, cfg, mcfg)
    run["train"].update(output_dir=str(tmp_path / "file"), max_steps=99)
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert main(["--config", str(tmp_path / "run.json"), "--steps", "12"]) == 0
    for name in ("model.safetensors", "offset_head.safetensors"):
        a, b = (load_file(tmp_path / d / "model" / name) for d in ("api", "file"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads((tmp_path / "file" / "summary.json").read_text())["steps"] == 12
    # one clear error naming the file and the key, exit 2, nothing trained
    (tmp_path / "bad.yaml").write_text("train:\n  stepz: 3\n")
    assert main(["--config", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: unknown train key(s) stepz" in err
    # both names of one setting with different values: one error naming both, exit 2, nothing trained
    assert main(["--config", str(tmp_path / "run.json"), "--output-dir", str(tmp_path / "two"), "--steps", "5",
                 "--max-steps", "6"]) == 2
    assert "flags: steps=5 and max_steps=6: steps is the old name of max_steps" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()


# ------------------------------------------------------------------ config fields vs the workflow schema

SCHEMA_TYPES = {"int": {"integer"}, "float": {"number"}, "bool": {"boolean"}, "str": {"string"}}


def _schema_types(prop: dict, defs: dict) -> set[str]:
    if "$ref" in prop:
        return _schema_types(defs[prop["$ref"].rsplit("/", 1)[1]], defs)
    if "enum" in prop:
        return {{str: "string", int: "integer", float: "number", bool: "boolean"}[type(v)] for v in prop["enum"]}
    if "oneOf" in prop:
        return set().union(*(_schema_types(p, defs) for p in prop["oneOf"]))
    t = prop["type"]
    return set(t) if isinstance(t, list) else {t}


def test_workflow_schema_and_config_fields_agree(monkeypatch):
    """The schema's train/model keys are exactly the dataclass fields (a field added to one and not
    the other fails here), with matching types; every field has help text and --help shows it."""
    import dataclasses

    import yaml

    from seqmatch.model import ModelConfig
    from seqmatch.train import build_parser

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    monkeypatch.setenv("COLUMNS", "100000")  # no line wrapping (it would break at hyphens)
    help_text = " ".join(build_parser().format_help().split())
    from seqmatch.runs import API_ONLY, RUN_FIELDS, WORKFLOW_ONLY
    from seqmatch.train import SCRIPT_FIELDS

    # the workflow sets RUN_FIELDS per run (grid coordinates, file layout); WORKFLOW_ONLY are its own;
    # API_ONLY fields of the Python API are no config.yaml keys
    for cls, key, expected in ((SequenceMatchConfig, "train_fields",
                                lambda names: (names - set(RUN_FIELDS) - set(API_ONLY)) | set(WORKFLOW_ONLY)),
                               (ModelConfig, "model_fields", lambda names: names)):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        props = schema["$defs"][key]["properties"]
        assert set(props) == expected(set(fields)), (key, set(props) ^ expected(set(fields)))
        for name, f in fields.items():
            assert f.metadata.get("help"), f"{cls.__name__}.{name} has no help text"
            if name != "model_init_kwargs":  # the Python API's (the command line's model flags hold it)
                assert " ".join(f.metadata["help"].split()) in help_text, name
            if name in props and f.type in SCHEMA_TYPES:
                assert _schema_types(props[name], schema["$defs"]) <= SCHEMA_TYPES[f.type], (name, props[name])
    assert set(RUN_FIELDS) - {f.name for f in dataclasses.fields(SequenceMatchConfig)} == set(SCRIPT_FIELDS) - {
        "eval_file"}


def test_estimator_diagnostics_on_a_trained_sm_run(toy, tmp_path, capsys):
    """python -m seqmatch.diagnostics estimators: on a finished SM run, the plug-in and data
    gradients differ by exactly the residue's gradient, measured here with its own function."""
    from seqmatch import diagnostics

    cfg = config(toy, tmp_path, method="sm", max_steps=16, bc_warmup_steps=4, beta_anneal_steps=4)
    make_trainer(toy, cfg, model_config()).train()
    (tmp_path / "run_config.json").write_text(json.dumps(
        run_file(toy, cfg, model_config())))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert diagnostics.main(["estimators", str(tmp_path), "--batches", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written into the run
    assert res["step"] == 16 and res["batches"] == 3
    for name in ("bc", "data", "plugin"):
        assert res[name]["variance"] >= 0 and abs(res[name]["cos_mean_with_bc_mean"]) <= 1 + 1e-6
    assert res["residue_grad_norm_mean"] > 0
    assert diagnostics.main(["estimators", str(tmp_path / "nowhere")]) == 2


def test_sm_draws_the_data_rows_and_noise_of_its_bc_run_in_every_step(toy, tmp_path, monkeypatch):
    """Common random numbers: rollouts and replayed rows come from their own per-step stream, so an
    SM run's data rows (and their noise) are the BC run's at every step, also after the warm-up,
    and SM − BC is paired step by step."""
    seen = {}
    make_batch = SequenceMatchTrainer.make_batch

    def spy(self, n_data, n_model, noised, micro=0):
        batch = make_batch(self, n_data, n_model, noised, micro)
        rows = [(ids[m].tolist(), lab[m].tolist())  # unpadded: model rows may pad the batch further
                for ids, lab, m, is_model in zip(batch.input_ids, batch.labels, batch.state_mask, batch.is_model)
                if not is_model]
        seen.setdefault(self.cfg.method, []).append((rows, None, int(batch.is_model.sum())))
        return batch

    monkeypatch.setattr(SequenceMatchTrainer, "make_batch", spy)
    common = dict(max_steps=20, bc_warmup_steps=6, beta_anneal_steps=4, save_steps=0)
    for method in ("bc", "sm"):
        make_trainer(toy, config(toy, tmp_path / method, method=method, **common), model_config()).train()
    bc, sm = seen["bc"], seen["sm"]
    assert len(bc) == len(sm) == 20
    assert all(b[2] == 0 for b in bc) and all(s[2] == 4 for s in sm[7:])  # replay rows once beta < 1
    assert [b[:2] for b in bc] == [s[:2] for s in sm]
