"""workflow/profiles/slurm on a real SLURM cluster: the one-node cluster of .ci/slurm/cluster.sh
(Debian's SLURM, two fake GPUs, partitions `main` and `urgent`, whose jobs preempt `main`'s by
requeueing them). Slow; skipped, with the reason, where the cluster cannot be started (not root,
packages not installable, no mknod).

One training run of the smoke profile, `add_or_sub_in_base` MLE seed 0 (its data, tokenizer and
train jobs through sbatch; 600 steps, a checkpoint every 20), built twice at once in two copies
of the workflow:
* on a fake GPU (`--gpus=fake:1`), preempted for real once its first checkpoint is written: a job
  of the `urgent` partition asks for both GPUs, SLURM sends SIGTERM and requeues the job, which
  starts again under the same job id (sacct: PREEMPTED, then COMPLETED; Snakemake submits it once);
* on CPU only, `scancel`led once its first checkpoint is written: the profile's
  `slurm-status-command: squeue` reports CANCELLED, Snakemake counts the job as failed and submits it
  again (with sacct, snakemake-executor-plugin-slurm 2.8.0 reads `CANCELLED by <uid>` as running and
  waits forever: the timeout).
Either way the job log says training resumed from a checkpoint of the interrupted attempt, and
the final weights and training log equal, bit for bit, those of an uninterrupted run of the same
run config trained here without SLURM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT, SMOKE, copy_workflow

pytestmark = pytest.mark.slow

CLUSTER = ROOT / ".ci" / "slurm" / "cluster.sh"
RUN = "resources/runs/add_or_sub_in_base/mle-none-eta0-none/seed0"
TRAIN_LOG = "resources/logs/train/add_or_sub_in_base/mle-none-eta0-none/seed0.log"
STEPS, EVERY = 600, 20
TIMEOUT = 600  # per workflow; about 3 minutes expected
TIMING = {"grad_time", "sample_time", "tokens_per_s"}  # wall-clock fields of a train_log record
SKIP = {2: "not root", 3: "the SLURM packages are missing and apt-get could not install them",
        4: "mknod is not permitted"}


def sh(*args: str, env: dict, check=True) -> str:
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert not check or res.returncode == 0, f"{' '.join(args)}: {res.stderr}"
    return res.stdout


@pytest.fixture(scope="module")
def cluster():
    """The running cluster: its directory and the environment its clients need (SLURM_CONF and the
    srun wrapper on PATH, from DIR/env.sh). Stopped, by pid, whatever the test does; its directory
    is removed (the daemons' logs are in the failure message)."""
    if os.geteuid() != 0:
        pytest.skip(f"a local SLURM cluster needs root ({CLUSTER.relative_to(ROOT)})")
    # not under pytest's basetemp, which a concurrent pytest session may clean up; short socket paths
    d = Path(tempfile.mkdtemp(prefix="seqmatch-slurm-"))
    try:
        res = subprocess.run([str(CLUSTER), "start", str(d)], capture_output=True, text=True, timeout=900)
        if res.returncode in SKIP:
            pytest.skip(f"no local SLURM cluster: {SKIP[res.returncode]} ({res.stderr.strip().splitlines()[-1]})")
        assert res.returncode == 0, f"{CLUSTER} start failed:\n{res.stderr[-4000:]}"
        line = (d / "env.sh").read_text()
        conf, path = re.fullmatch(r"export SLURM_CONF=(\S+) PATH=(\S+):\$PATH\n", line).groups()
        # `python` in job commands: this interpreter; the repository's seqmatch is the copy's (cwd)
        bindir = os.path.dirname(sys.executable)
        env = {**os.environ, "SLURM_CONF": conf, "PATH": f"{path}:{bindir}:{os.environ['PATH']}",
               "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        yield d, env
    finally:
        subprocess.run([str(CLUSTER), "stop", str(d)], capture_output=True, timeout=300)
        shutil.rmtree(d, ignore_errors=True)


def workflow_copy(path: Path, gpu: int, env: dict) -> tuple[Path, dict]:
    wd = copy_workflow(path)
    (wd / "slurm.yaml").write_text(yaml.safe_dump({
        "resources": {"train": {"threads": 1, "gpu": gpu, "gpu_model": "fake" if gpu else None}},
        "tasks": {"add_or_sub_in_base": {"train": {"steps": STEPS, "checkpoint_every": EVERY}}},
    }))
    return wd, {**env, "PYTHONPATH": str(wd)}


def start_workflow(wd: Path, env: dict) -> subprocess.Popen:
    """The run's summary.json through the shipped profile: the way a user runs it, plus an account
    and a short first status check (the plugin's default waits 40 s)."""
    cmd = [sys.executable, "-m", "snakemake", f"{RUN}/summary.json", "--profile", "workflow/profiles/slurm",
           "--configfile", SMOKE, "slurm.yaml", "--slurm-init-seconds-before-status-checks", "2",
           "--default-resources", "slurm_account=seqmatch"]
    return subprocess.Popen(cmd, cwd=wd, env=env, stdout=open(wd / "snakemake.log", "w"), stderr=subprocess.STDOUT)


def past_first_checkpoint(wd: Path) -> bool:
    try:
        step = json.loads((wd / RUN / "checkpoint" / "state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):  # not there yet, or being replaced
        return False
    assert step < STEPS and not (wd / RUN / "summary.json").exists(), "training ended before it was interrupted"
    return step >= EVERY


def train_jobs(wd: Path) -> list[str]:
    """SLURM job ids of the train rule's submissions, in order, from the Snakemake log."""
    return re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_train/", (wd / "snakemake.log").read_text())


def states(job: str, env: dict) -> list[list[str]]:
    """sacct's state and allocated TRES of every run of a job id (a requeued job: one per start)."""
    out = sh("sacct", "-j", job, "--duplicates", "-X", "-n", "-P", "-o", "State,AllocTRES", env=env)
    return [line.split("|") for line in out.splitlines()]


def diagnostics(d: Path, *wds: Path) -> str:
    parts = []
    for p in [w / "snakemake.log" for w in wds] + [w / TRAIN_LOG for w in wds] + \
            [d / "log" / "slurmctld.log", d / "log" / "slurmd.log"]:
        if p.exists():
            parts.append(f"== {p}\n{p.read_text(errors='replace')[-2500:]}")
    return "\n".join(parts)


def reference_run(wd: Path, out: Path, env: dict) -> subprocess.Popen:
    """The same run config, trained here from step 0 without interruption (one thread, as the job)."""
    cfg = json.loads((wd / RUN / "run_config.json").read_text())
    cfg["train"]["output_dir"] = str(out)
    path = out.parent / f"{out.name}_config.json"
    path.write_text(json.dumps(cfg))
    return subprocess.Popen([sys.executable, "-m", "seqmatch.train", "--config", str(path)], cwd=wd,
                            env={**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                            stdout=open(out.parent / f"{out.name}.log", "w"), stderr=subprocess.STDOUT)


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted((run / "model").rglob("*.safetensors"))
    assert files, f"no weights in {run / 'model'}"
    return {f"{f.relative_to(run)}:{k}": v for f in files for k, v in load_file(str(f)).items()}


def check_resumed_bit_identical(wd: Path, ref: Path):
    m = re.search(r"checkpoint: resuming at step (\d+) of (\d+)", (wd / TRAIN_LOG).read_text())
    assert m, f"{TRAIN_LOG} does not say the job resumed from a checkpoint"
    assert EVERY <= int(m[1]) < STEPS and int(m[2]) == STEPS, m[0]
    a, b = weights(wd / RUN), weights(ref)
    assert a.keys() == b.keys()
    unequal = [k for k in a if not (a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and (a[k] == b[k]).all())]
    assert not unequal, f"weights differ from the uninterrupted run: {unequal[:5]}"

    def log(run):
        return [{k: v for k, v in json.loads(l).items() if k not in TIMING}
                for l in (run / "train_log.jsonl").read_text().splitlines()]

    assert log(wd / RUN) == log(ref)  # every step once, with the same values
    assert len(log(ref)) == STEPS


def test_preempted_and_scancelled_training_resume_bit_identical(cluster, tmp_path):
    d, env = cluster
    gpu, gpu_env = workflow_copy(tmp_path / "gpu", 1, env)
    cpu, cpu_env = workflow_copy(tmp_path / "cpu", 0, env)
    envs = {gpu: gpu_env, cpu: cpu_env}
    procs = {wd: start_workflow(wd, envs[wd]) for wd in envs}
    refs = {wd: tmp_path / f"reference_{wd.name}" for wd in envs}
    runs = {}
    deadline = time.monotonic() + TIMEOUT
    try:
        preempted = cancelled = None
        while preempted is None or cancelled is None:
            assert time.monotonic() < deadline, "no training job reached its first checkpoint"
            for wd, p in procs.items():
                assert p.poll() is None, f"{wd.name} workflow ended early:\n{diagnostics(d, wd)}"
            # the uninterrupted run starts before the interruption (Snakemake deletes a failed
            # job's run_config.json) and trains meanwhile
            if preempted is None and past_first_checkpoint(gpu):
                runs[gpu] = reference_run(gpu, refs[gpu], envs[gpu])
                # both fake GPUs for a job of the higher partition: SLURM preempts (requeues) ours
                preempted = train_jobs(gpu)[-1]
                sh("sbatch", "--parsable", "-p", "urgent", "-A", "seqmatch", "--gpus=fake:2",
                   f"--output={d}/urgent_%j.log", "--wrap", "sleep 2", env=env)
            if cancelled is None and past_first_checkpoint(cpu):
                runs[cpu] = reference_run(cpu, refs[cpu], envs[cpu])
                cancelled = train_jobs(cpu)[-1]
                sh("scancel", cancelled, env=env)
            time.sleep(0.2)
        for p in [*procs.values(), *runs.values()]:  # the workflow does not hang on the cancelled job
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"not finished within {TIMEOUT} s (a workflow hung?):\n{diagnostics(d, gpu, cpu)}")
    finally:
        for p in [*procs.values(), *runs.values()]:
            if p.poll() is None:
                p.kill()
    for wd in envs:
        assert procs[wd].returncode == 0, f"{wd.name} workflow failed:\n{diagnostics(d, wd)}"
        assert runs[wd].returncode == 0, (tmp_path / f"reference_{wd.name}.log").read_text()[-3000:]

    # preempted: SLURM requeued the job (one submission, the same id started twice) on a fake GPU
    sm_log = (gpu / "snakemake.log").read_text()
    assert train_jobs(gpu) == [preempted], sm_log[-3000:]
    runs_of = states(preempted, env)
    assert [s for s, _ in runs_of] == ["PREEMPTED", "COMPLETED"], runs_of
    assert all("gres/gpu:fake=1" in tres for _, tres in runs_of), runs_of
    # scancelled: squeue said CANCELLED, Snakemake submitted the job again
    sm_log = (cpu / "snakemake.log").read_text()
    jobs = train_jobs(cpu)
    assert len(jobs) == 2 and jobs[0] == cancelled, sm_log[-3000:]
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in sm_log, sm_log[-3000:]
    assert "Falling back to 'sacct'" not in sm_log
    assert states(cancelled, env)[0][0].startswith("CANCELLED") and states(jobs[1], env)[0][0] == "COMPLETED"
    for wd in procs:
        check_resumed_bit_identical(wd, refs[wd])
