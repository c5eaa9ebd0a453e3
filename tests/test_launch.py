"""The multi-process launcher (seqmatch.launch), seqmatch.train's refusal of a launch of the wrong
size and the checkpoint's streams of every process (fast: no process is launched; the real
2-process runs are tests/test_multiprocess.py, slow)."""

import json
import sys

import pytest

from seqmatch import launch


def test_one_process_runs_the_trainer_itself_and_more_go_through_the_launcher():
    assert launch.command(1) == "python -m seqmatch.train"
    assert launch.command(4, "cpu") == "python -m seqmatch.launch --num-processes 4 --device cpu --"
    with pytest.raises(ValueError, match="launch device 'tpu'"):
        launch.command(2, "tpu")


@pytest.mark.parametrize("device, cuda, expected", [
    ("auto", 0, "cpu"), ("auto", 2, "cuda"), ("cpu", 2, "cpu"), ("cuda", 4, "cuda")])
def test_the_device_is_chosen_where_the_job_runs(device, cuda, expected):
    assert launch.resolve_device(device, 2, cuda_devices=cuda) == expected


@pytest.mark.parametrize("device, cuda", [("cuda", 0), ("cuda", 1), ("auto", 1)])
def test_fewer_cuda_devices_than_processes_is_refused(device, cuda):
    with pytest.raises(ValueError, match=f"num_processes=2 on CUDA, but {cuda} CUDA device"):
        launch.resolve_device(device, 2, cuda_devices=cuda)


def test_cpu_processes_go_through_accelerate_with_accelerate_use_cpu():
    """`accelerate launch --multi_gpu` without CUDA starts independent copies unless
    ACCELERATE_USE_CPU=1 (measured with accelerate 1.16; `--cpu --num_processes N` starts one)."""
    argv, env = launch.accelerate_argv(2, "cpu", ["--config", "x.json"], 12345)
    assert argv[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    joined = " ".join(argv[3:])
    assert "--multi_gpu --num_processes 2 --num_machines 1" in joined and "--cpu" not in argv
    assert joined.endswith("--main_process_port 12345 -m seqmatch.train --config x.json")
    assert env == {"ACCELERATE_USE_CPU": "1"}
    assert launch.accelerate_argv(2, "cuda", [], 1)[1] == {}


def test_launcher_refuses_one_process(capsys):
    assert launch.main(["--num-processes", "1", "--", "--config", "x"]) == 2
    assert "python -m seqmatch.train" in capsys.readouterr().err


def _toy(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<bos>", "<eos>", "<pad>", "<bkspc>", "Solution:", "1", "2"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                            additional_special_tokens=["<bkspc>"]).save_pretrained(tmp_path / "tok")
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": "1 Solution:", "completion": " 1"}) + "\n")
    return ["--train-file", str(tmp_path / "train.jsonl"), "--tokenizer", str(tmp_path / "tok"),
            "--out-dir", str(tmp_path / "run"), "--method", "mle", "--steps", "2", "--batch-size", "2",
            "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "16"]


def test_a_run_of_two_processes_launched_as_one_is_refused(tmp_path, capsys):
    from seqmatch.train import main

    assert main(_toy(tmp_path) + ["--num-processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "num_processes=2 but this launch has 1 process(es)" in err and "seqmatch.launch" in err
    assert not (tmp_path / "run").exists()


def test_a_copy_that_accelerate_runs_alone_is_refused(tmp_path, capsys, monkeypatch):
    """What each of N copies sees when accelerate falls back to DistributedType.NO: the launcher's
    WORLD_SIZE=N, one process in accelerate."""
    from seqmatch.train import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(_toy(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "WORLD_SIZE=2" in err and "ACCELERATE_USE_CPU=1" in err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_holds_every_process_streams_and_replay_buffer(tmp_path):
    """Process 1 resumes its own streams and buffer, not fresh ones; a checkpoint without them
    (single-process, or of an older seqmatch) leaves process 1's streams as they are."""
    import numpy as np
    import torch

    from seqmatch import checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    streams = [(np.random.default_rng(0), torch.Generator().manual_seed(1)),
               (np.random.default_rng([0, 1]), torch.Generator().manual_seed(7))]
    for rng, gen in streams:  # somewhere into both streams
        rng.integers(0, 10, 5), torch.rand(3, generator=gen)
    progress = dict(step=4, nonfinite=0, last_sample_step=None, grad_times=[], sample_times=[],
                    buffer={"items": ["rank0"]})
    kw = dict(model=model, optimizer=opt, scheduler=sched, progress=progress, identity={})
    checkpoint.save(tmp_path / "multi", rng=streams[0][0], gen=streams[0][1], **kw,
                    ranks=[checkpoint.capture_process(*streams[1], {"items": ["rank1"]})])
    checkpoint.save(tmp_path / "single", rng=streams[0][0], gen=streams[0][1], **kw)
    expect = [(rng.integers(0, 10**9, 3).tolist(), torch.rand(3, generator=gen).tolist()) for rng, gen in streams]

    def resume(name, rank):
        rng, gen = np.random.default_rng(99), torch.Generator().manual_seed(99)
        state = checkpoint.read_state(tmp_path / name)
        buf = checkpoint.restore(tmp_path / name, state, model=model, optimizer=opt, scheduler=sched, rng=rng,
                                 gen=gen, rank=rank)
        return buf, (rng.integers(0, 10**9, 3).tolist(), torch.rand(3, generator=gen).tolist())

    assert resume("multi", 0) == ({"items": ["rank0"]}, expect[0])
    assert resume("multi", 1) == ({"items": ["rank1"]}, expect[1])
    assert resume("single", 0) == ({"items": ["rank0"]}, expect[0])
    untouched = (np.random.default_rng(99).integers(0, 10**9, 3).tolist(),
                 torch.rand(3, generator=torch.Generator().manual_seed(99)).tolist())
    assert resume("single", 1) == (None, untouched)
    assert "ranks" not in checkpoint.read_state(tmp_path / "single")
