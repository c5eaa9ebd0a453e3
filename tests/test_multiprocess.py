"""Real 2-process training on CPU (gloo), launched by the command the workflow's train rule runs
(``seqmatch.launch.command``, workflow/rules/common.smk ``train_launcher``). Slow: each launch
starts two Python processes that import torch and transformers.

What is checked, against references that do not come from the run itself:
* the 2-process BC run equals a single-process run whose step holds both processes' rows as two
  micro-batches of gradient accumulation (DDP averages the processes' gradients; accumulation
  averages the micro-batches' losses: the same step), each drawn from that process's stream
  (process 0: the single-process stream; process 1: ``numpy.random.default_rng([seed, 1])``);
  and it does not equal the run where both processes would draw process 0's rows;
* the log holds the step's values over both processes (loss averaged, tokens summed);
* the processes end with the same weights;
* an SM run (rollouts and replay buffers of its own on each process) killed and resumed ends
  bit-identical to the uninterrupted 2-process run, log included;
* ``accelerate launch --multi_gpu`` without CUDA and without ACCELERATE_USE_CPU (independent
  single-process copies) is refused before anything is written.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmatch import launch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = dict(arch="llama", n_layer=1, n_head=2, d_model=32, d_ff=64, max_position_embeddings=64)
SEED = 3


def train_values(toy, out, **kw):
    """A run config's train section, under seqmatch < 0.2's names (steps, lr, ...: still accepted)."""
    base = dict(train_file=str(toy / "train.jsonl"), tokenizer=str(toy / "tok"), out_dir=str(out), seed=SEED,
                steps=24, batch_size=8, lr=3e-3, warmup_steps=2, checkpoint_every=0, max_len=16, eta=0.1,
                noise="random", bc_warmup_steps=5, beta_anneal_steps=10, replay_capacity=16, replay_reuse=2,
                gen_batch_size=8, model_rows=4, max_new_tokens=6, alpha=0.5, gamma=0.95, mask_prompt=True)
    return {**base, **kw}


def run_config(toy, out, **kw) -> Path:
    """A run config file as the workflow writes it (a 2-process run carries num_processes)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}_config.json"
    path.write_text(json.dumps({"train": train_values(toy, out, num_processes=2, **kw), "model": TINY}))
    return path


def env():
    # the repository's seqmatch (not an installed copy) in every process; this interpreter's
    # directory first on PATH (the launcher's `python`); no CUDA, one thread per process
    bindir = os.path.dirname(sys.executable)
    return {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
            "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}


def workflow_command(config: Path) -> str:
    """The train rule's shell command: `{launcher} --config FILE`."""
    return f"{launch.command(2, 'cpu')} --config {shlex.quote(str(config))}"


def launch_2(config: Path, timeout=300) -> subprocess.CompletedProcess:
    res = subprocess.run(workflow_command(config), shell=True, cwd=REPO, env=env(), capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return res


def weights(out) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(out) / "checkpoint" / "trainable.safetensors"))


def read_log(out):
    return [json.loads(l) for l in (Path(out) / "train_log.jsonl").read_text().splitlines()]


def max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def single_process(toy, out, streams=None, **kw):
    """A single-process run in this process; ``streams``: numpy seeds, one per micro-batch: micro-batch
    m draws its rows and noise from stream m (what process m of a multi-process run does)."""
    from seqmatch.config import SequenceMatchConfig, resolve_aliases
    from seqmatch.model import ModelConfig
    from seqmatch.train import SequenceMatchTrainer, load_rows

    class Streams(SequenceMatchTrainer):
        def draw_examples(self, n):  # called once per micro-batch, before that micro-batch's noise
            if not hasattr(self, "streams"):
                self.streams, self.calls = [np.random.default_rng(s) for s in streams], 0
            self.rng = self.streams[self.calls % len(self.streams)]
            self.calls += 1
            return super().draw_examples(n)

    cls = Streams if streams else SequenceMatchTrainer
    values = resolve_aliases(train_values(toy, out, **kw))  # the run config files' old names (aliases)
    rows, tok = load_rows(values.pop("train_file")), values.pop("tokenizer")
    return cls(model=ModelConfig(**TINY), args=SequenceMatchConfig(**values), train_dataset=rows,
               processing_class=tok).train()


def test_two_processes_train_the_step_of_both_processes_rows(toy, tmp_path):
    t0 = time.time()
    cfg = run_config(toy, tmp_path / "ddp", method="bc")
    res = launch_2(cfg)
    assert res.stdout.count('"method": "bc"') == 1  # one process prints the summary line
    ddp = weights(tmp_path / "ddp")
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["num_processes"] == 2
    digests = summary["process_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]  # the processes end with the same weights
    # reference: one process, both processes' rows as two micro-batches of one step
    single_process(toy, tmp_path / "ref", streams=[SEED, [SEED, 1]], batch_size=16, grad_accum=2, method="bc")
    ref = weights(tmp_path / "ref")
    # the run where both processes drew process 0's rows: the single-process run
    single_process(toy, tmp_path / "same_rows", method="bc")
    same = weights(tmp_path / "same_rows")
    d_ref, d_same = max_diff(ddp, ref), max_diff(ddp, same)
    assert d_ref < 1e-5 and d_same > 1e-2, (d_ref, d_same)
    log, ref_log = read_log(tmp_path / "ddp"), read_log(tmp_path / "ref")
    assert [r["step"] for r in log] == list(range(24))
    # the log holds both processes' step: the same rows (token counts summed) and the mean loss
    assert [r["tokens"] for r in log] == [r["tokens"] for r in ref_log]
    assert [r["ce"] for r in log] == pytest.approx([r["ce"] for r in ref_log], rel=1e-5)
    print(f"bc: 2-process vs reference max |dw| {d_ref:.2e}, vs one stream {d_same:.2e}; {time.time() - t0:.0f}s")


def _stat(pid) -> list[str]:
    """(pid, state, ppid) of /proc/PID/stat ([] once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return [str(pid), *text.rsplit(")", 1)[1].split()[:2]]


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (Linux /proc)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(d.name)):
            parent[int(d.name)] = int(st[2])
    tree, grew = {root}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= new
        grew = bool(new)
    return sorted(tree)


def test_two_process_sm_killed_and_resumed_is_bit_identical(toy, tmp_path):
    t0 = time.time()
    full = run_config(toy, tmp_path / "full", method="sm", steps=30, checkpoint_every=4)
    launch_2(full)
    killed = run_config(toy, tmp_path / "killed", method="sm", steps=30, checkpoint_every=4)
    proc = subprocess.Popen(workflow_command(killed), shell=True, cwd=REPO, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    step = 0
    while time.time() - t0 < 240 and proc.poll() is None:
        try:
            step = json.loads(state.read_text())["step"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        if step >= 12:  # past the BC warm-up: rollouts, replay buffers and sampling streams in play
            break
        time.sleep(0.05)
    assert proc.poll() is None and step >= 12, "no checkpoint past the warm-up before the run ended"
    # the launcher and both processes, at once (torch's launcher starts each process in a session of
    # its own: a signal to the launcher's process group does not reach them)
    tree = descendants(proc.pid)
    assert len(tree) >= 3, tree  # the launcher and two training processes
    for pid in tree:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    for pid in tree:  # gone (reaped by their parents or by init) before the run is resumed
        while Path(f"/proc/{pid}").exists() and "Z" not in _stat(pid)[1:2]:
            time.sleep(0.05)
    assert not (tmp_path / "killed" / "summary.json").exists()
    saved = json.loads(state.read_text())
    assert len(saved["ranks"]) == 1 and saved["ranks"][0]["rng"] != saved["rng"]  # process 1's own streams
    launch_2(killed)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_log(tmp_path / "full"), read_log(tmp_path / "killed")
    assert [r["step"] for r in lb] == list(range(30))
    assert [(r["loss"], r["tokens"], r["buffer_size"]) for r in la] == \
        [(r["loss"], r["tokens"], r["buffer_size"]) for r in lb]
    assert any("sm_loss" in r for r in la)
    print(f"sm: killed at step {saved['step']}, resumed bit-identical; {time.time() - t0:.0f}s")


def test_independent_copies_are_refused(toy, tmp_path):
    """`accelerate launch --multi_gpu` on a machine without CUDA, without ACCELERATE_USE_CPU: two
    single-process copies (DistributedType.NO). Both refuse before writing anything."""
    cfg = run_config(toy, tmp_path / "copies", method="mle")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--dynamo_backend", "no", "-m", "seqmatch.train", "--config", str(cfg)]
    e = {k: v for k, v in env().items() if k != "ACCELERATE_USE_CPU"}
    res = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "WORLD_SIZE=2" in res.stderr and "ACCELERATE_USE_CPU=1" in res.stderr, res.stderr[-3000:]
    assert not (tmp_path / "copies" / "train_log.jsonl").exists()
    assert not (tmp_path / "copies" / "checkpoint").exists()
