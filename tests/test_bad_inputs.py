"""A user's own data, model and tokenizer that cannot work (issue 23): each kind of bad input
through the real code path (the data CLI, ``seqmatch.train``, or the pipeline before any job) gives
one message naming the file (file:line, 1-based) or the config key, what is wrong and what to do,
a non-zero exit, no traceback, and nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_workflow import copy_workflow, snakemake

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

QA = [{"question": f"reverse: {w}", "answer": w[::-1]} for w in ("gaeh", "abc", "xyzw", "hello", "tree", "moon")]


def lines(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def data_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqmatch.data", *args, "--out-dir", "out"], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def own_qa(tmp_path: Path, train, test=QA[:2]) -> Path:
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "train.jsonl").write_text(train if isinstance(train, str) else lines(train))
    (d / "test.jsonl").write_text(lines(test))
    return d


def assert_refused(res: subprocess.CompletedProcess, cwd: Path, *needles: str) -> str:
    """Exit non-zero with one error line holding every needle, no traceback, no output files."""
    err = res.stderr.strip()
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    assert not any((cwd / "out").glob("*.jsonl")) and not (cwd / "out" / "meta.json").exists()
    return last


# (train.jsonl content, what the one error line must say)
BAD_QA = [
    (lines(QA[:2] + ['{"question": "reverse: ab", "answer": "ba"'] + QA[2:]),
     ["mydata/train.jsonl:3:", "not a JSON object on one line", '"question": ..., "answer": ...'], "malformed line"),
    (lines(QA[:3] + [{"question": "reverse: ab", "answr": "ba"}]),
     ["mydata/train.jsonl:4:", "missing key 'answer'", "did you mean 'answr'?", '"question": ..., "answer": ...'],
     "misspelt key"),
    (lines([{"answer": "ba"}] + QA),
     ["mydata/train.jsonl:1:", "missing key 'question'", "the row has 'answer'"], "missing question"),
    (lines(QA[:4] + [{"question": "reverse: ab", "answer": "  "}]),
     ["mydata/train.jsonl:5:", "empty value of 'answer'"], "empty answer"),
    (lines(QA[:1] + [{"question": None, "answer": "x"}]),
     ["mydata/train.jsonl:2:", "empty value of 'question'"], "null question"),
    (lines(QA[:2] + ['["reverse: ab", "ba"]']),
     ["mydata/train.jsonl:3:", "expected a JSON object", "got list"], "a row that is no object"),
    ("", ["mydata/train.jsonl", "no rows (the file is empty)"], "empty file"),
    ("\n\n", ["mydata/train.jsonl", "no rows (the file is empty)"], "blank lines only"),
]


@pytest.mark.parametrize("train,needles,why", BAD_QA, ids=[c[2] for c in BAD_QA])
def test_bad_own_qa_rows_name_file_line_and_key(tmp_path, train, needles, why):
    own_qa(tmp_path, train)
    res = data_cli(tmp_path, "arithmetic", "--task", "mul", "--source", "hub", "--hub-id", "mydata",
                   "--n-train", "3", "--n-test", "2")
    assert_refused(res, tmp_path, *needles)


def test_own_text_and_translation_rows_are_checked(tmp_path):
    (tmp_path / "text.jsonl").write_text(lines([{"text": "one two three"}, {"txt": "four"}]))
    res = data_cli(tmp_path, "text", "--source", "hub", "--hub-id", "text.jsonl", "--n-test", "1")
    assert_refused(res, tmp_path, "text.jsonl:2:", "missing key 'text'", "did you mean 'txt'?")
    (tmp_path / "pairs.jsonl").write_text(lines([{"translation": {"en": "a cat", "fr": "un chat"}},
                                                 {"translation": {"en": "a dog"}}]))
    res = data_cli(tmp_path, "translation", "--source", "hub", "--hub-id", "pairs.jsonl", "--n-test", "1")
    assert_refused(res, tmp_path, "pairs.jsonl:2:", "missing key 'translation.fr'", "the row's 'translation' has 'en'")


def test_own_csv_rows_name_the_line(tmp_path):
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "train.csv").write_text("question,answer\nreverse: ab,ba\nreverse: abc,\n")
    (d / "test.csv").write_text("question,answer\nreverse: xy,yx\n")
    res = data_cli(tmp_path, "arithmetic", "--task", "mul", "--source", "hub", "--hub-id", "mydata",
                   "--n-train", "2", "--n-test", "1")
    assert_refused(res, tmp_path, "mydata/train.csv:3:", "empty value of 'answer'")


def test_fewer_rows_than_n_train_is_an_error_or_a_warning(tmp_path):
    own_qa(tmp_path, QA)
    args = ["arithmetic", "--task", "mul", "--source", "hub", "--hub-id", "mydata", "--n-train", "10", "--n-test", "2"]
    res = data_cli(tmp_path, *args)
    assert_refused(res, tmp_path, "tasks.mul.data.n_train", "= 10", "only 6 usable train rows",
                   "if_fewer_rows: warn")
    res = data_cli(tmp_path, *args, "--if-fewer-rows", "warn")
    assert res.returncode == 0, res.stderr
    assert "warning: config key tasks.mul.data.n_train (flag --n-train) = 10, but the data have only 6" in res.stderr
    rows = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert sorted(r["answer"] for r in rows) == sorted(r["answer"] for r in QA)


def test_a_typo_in_a_local_data_path_names_the_key_not_cli_flags_of_offline_sources(tmp_path):
    own_qa(tmp_path, QA)
    res = data_cli(tmp_path, "arithmetic", "--task", "mul", "--source", "hub", "--hub-id", "mydata/trian.jsonl",
                   "--n-train", "3", "--n-test", "2")
    last = assert_refused(res, tmp_path, "tasks.mul.data.hub_id", "'mydata/trian.jsonl'", "no such file or directory")
    assert "--source generator" not in last and "not cached" not in last


# ------------------------------------------------------------------------------------ the pipeline


def pipeline_refuses(tmp_path: Path, override: dict, *needles: str) -> str:
    """snakemake on a cheap target with the override: refused while parsing, the key named,
    nothing run or written."""
    wd = copy_workflow(tmp_path / "wf", package=False)
    (wd / "models").mkdir()
    (wd / "mydata").mkdir()
    (wd / "mydata" / "notes.txt").write_text("not data\n")
    (wd / "models" / "no-tokenizer").mkdir()
    (wd / "models" / "no-tokenizer" / "config.json").write_text("{}")
    (wd / "models" / "empty").mkdir()
    (wd / "own.yaml").write_text(yaml.safe_dump(override))
    res = snakemake(["--cores", "1", "results/figure1.png", "--configfile", "own.yaml"], wd, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "Invalid configuration (" in out and "nothing was run):" in out, out  # (schema or semantic check)
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out[-3000:]}"
    assert list((wd / "results").iterdir()) == [] and not (wd / "resources").exists()
    return out


BAD_PIPELINE = [
    ({"tasks": {"mul": {"data": {"source": "hub", "hub_id": "mydat/mul.jsonl"}}}},
     ["config key 'tasks.mul.data.hub_id' = 'mydat/mul.jsonl': no such file or directory"], "data path typo"),
    ({"tasks": {"text": {"data": {"source": "hub", "hub_id": "./mytext"}}}},
     ["config key 'tasks.text.data.hub_id' = './mytext': no such file or directory"], "relative data path typo"),
    ({"tasks": {"mul": {"data": {"source": "hub", "hub_id": "mydata"}}}},
     ["config key 'tasks.mul.data.hub_id' = 'mydata': the directory has no .jsonl/.json/.csv/.parquet files"],
     "data directory without data"),
    ({"model": {"name_or_path": "models/tiny-neox"}},
     ["config key 'model.name_or_path' = 'models/tiny-neox': no such file or directory"], "model path typo"),
    ({"model": {"name_or_path": "models/empty"}},
     ["config key 'model.name_or_path' = 'models/empty'", "no config.json", "save_pretrained"], "not a model dir"),
    ({"model": {"name_or_path": "models/no-tokenizer"}, "tokenizer": {"name_or_path": "models/no-tokenizer"}},
     ["config key 'tokenizer.name_or_path' = 'models/no-tokenizer'", "no tokenizer files", "save_pretrained"],
     "dir without tokenizer files"),
    ({"model": {"name_or_path": "models/no-tokenizer"}, "tokenizer": {"name_or_path": "/nonexistent/tok"}},
     ["config key 'tokenizer.name_or_path' = '/nonexistent/tok': no such file or directory"], "tokenizer path typo"),
    ({"tasks": {"mul": {"model": {"name_or_path": "../models/x"}}}},
     ["config key 'tasks.mul.model.name_or_path' = '../models/x': no such file or directory"], "task model typo"),
]


# a task of the user's own: what the block needs (README "Your own task, data and model")
OWN = {"kind": "qa", "vocab_size": 300, "train": {"max_len": 48},
       "data": {"source": "hub", "hub_id": "mydata/notes.txt", "n_train": 6, "n_test": 2, "seed": 0},
       "eval": {"n_eval": 2, "max_new_tokens": 8, "answer_normalization": "exact"}}


def own(**change) -> dict:
    block = json.loads(json.dumps(OWN))
    for key, value in change.items():
        if isinstance(value, dict):
            for k, v in value.items():
                block[key].pop(k) if v is None else block[key].update({k: v})
        elif value is None:
            block.pop(key)
        else:
            block[key] = value
    return {"tasks": {"reverse": block}}


BAD_PIPELINE += [
    ({"model": {"name_or_path": "models/no-tokenizer"}},
     ["config key 'model.name_or_path' = 'models/no-tokenizer': the model's own tokenizer is used",
      "no tokenizer files", "set tokenizer.name_or_path", "model.new_tokenizer: true"], "model dir without its tokenizer"),
]


def test_task_names_and_kinds_are_checked_before_any_job(tmp_path):
    """A task of its own without a kind, with an unknown one, a built-in task of another kind, a
    name that is no path part: one line each, in one refused run."""
    tasks = {"reverse": own(kind=None)["tasks"]["reverse"], "sorting": own(kind="classification")["tasks"]["reverse"],
             "text": {"kind": "qa"}, "my-task": own()["tasks"]["reverse"]}
    pipeline_refuses(tmp_path, {"tasks": tasks},
                     "config key 'tasks.reverse.kind' is missing: a task of its own name declares its kind, one of "
                     "qa, text, translation", "config key 'tasks.sorting.kind' = 'classification'",
                     "config key 'tasks.text.kind' = 'qa': text is the built-in text task; give your task of kind qa "
                     "another name", "config key 'tasks.my-task': a task name is letters, digits and _")


def test_what_an_own_task_needs_is_checked_before_any_job(tmp_path):
    """Blocks of own tasks each missing one thing its kind needs, and a table with ground-truth
    noise on a task without a base: one line each naming the key and the fix, in one refused run."""
    tasks = {"no_norm": own(eval={"answer_normalization": None}), "gen": own(data={"source": "generator"}),
             "no_len": own(train={"max_len": None}), "no_vocab": own(vocab_size=None), "rev": own()}
    cfg = {"tasks": {name: block["tasks"]["reverse"] for name, block in tasks.items()},
           "experiments": {"rev_table": {"task": "rev", "noise": "ground_truth", "etas": [0.1], "seeds": [0]}}}
    pipeline_refuses(
        tmp_path, cfg,
        "missing config key 'tasks.no_norm.eval.answer_normalization'", "one of numeric, strip, exact",
        "config key 'tasks.gen.data.source' = 'generator': the generator (mathematics_dataset) makes only",
        "give your rows with source: hub and hub_id",
        "config key 'tasks.no_len.train.max_len' = 1024 (not set: seqmatch.train's default): more than the 256 positions",
        "missing config key 'tasks.no_vocab.vocab_size'",
        "config key 'experiments.rev_table': ground_truth noise inserts digits 0..b-1", "set tasks.rev.data.base",
        "or use noise: random")


@pytest.mark.parametrize("override,needles,why", BAD_PIPELINE, ids=[c[2] for c in BAD_PIPELINE])
def test_bad_own_paths_stop_the_pipeline_before_any_job(tmp_path, override, needles, why):
    out = pipeline_refuses(tmp_path, override, *needles)
    assert "Repo id must be in the form" not in out and "--source generator" not in out


def test_a_command_line_value_of_the_wrong_type_stops_the_pipeline(tmp_path):
    wd = copy_workflow(tmp_path / "wf", package=False)
    res = snakemake(["--cores", "1", "results/figure1.png", "--config", "train={steps: many}", "offline=maybe"],
                    wd, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Invalid configuration (nothing was run)" in out, out
    assert "config key 'train.steps' = 'many' (snakemake --config): expected integer" in out
    assert "config key 'offline' = 'maybe' (snakemake --config): expected boolean" in out
    assert list((wd / "results").iterdir()) == [] and not (wd / "resources").exists()


def test_own_qa_task_rows_are_checked_under_its_name(tmp_path):
    own_qa(tmp_path, QA[:2] + [{"question": "reverse: ab"}] + QA[2:])
    res = data_cli(tmp_path, "qa", "--task", "reverse", "--source", "hub", "--hub-id", "mydata", "--n-train", "3",
                   "--n-test", "2")
    assert_refused(res, tmp_path, "mydata/train.jsonl:3:", "missing key 'answer'")
    (tmp_path / "b").mkdir()
    own_qa(tmp_path / "b", QA)
    res = data_cli(tmp_path / "b", "qa", "--task", "reverse", "--source", "hub", "--hub-id", "mydata", "--n-train",
                   "30", "--n-test", "2")
    assert_refused(res, tmp_path / "b", "config key tasks.reverse.data.n_train (flag --n-train) = 30", "only 6")


def test_a_file_datasets_cannot_read_is_one_line(tmp_path):
    d = tmp_path / "mydata"
    d.mkdir()
    for split in ("train", "test"):
        (d / f"{split}.parquet").write_bytes(b"not parquet\n")
    res = data_cli(tmp_path, "arithmetic", "--task", "mul", "--source", "hub", "--hub-id", "mydata",
                   "--n-train", "2", "--n-test", "1")
    assert_refused(res, tmp_path, "mydata/train.parquet: datasets cannot read it as parquet", "ArrowInvalid")


def test_bad_own_data_fails_its_data_job_with_the_line_on_the_terminal(tmp_path):
    """Through the pipeline: the data job of the user's task fails, its log is the one error line,
    the terminal shows it too, and no data file is left."""
    wd = copy_workflow(tmp_path / "wf", package=True)
    own_qa(wd, QA[:3] + [{"question": "reverse: ab", "answr": "ba"}] + QA[3:])
    (wd / "own.yaml").write_text(yaml.safe_dump({"tasks": {"mul": {"data": {"source": "hub", "hub_id": "mydata"}}}}))
    res = snakemake(["--cores", "1", "resources/data/mul/train.jsonl", "--configfile", "own.yaml"], wd, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    line = "error: mydata/train.jsonl:4: missing key 'answer' (did you mean 'answr'?)"
    assert line in out, out[-3000:]
    log = (wd / "resources" / "logs" / "data" / "mul.log").read_text().strip().splitlines()
    assert len(log) == 1 and log[0].startswith(line), log
    assert not any((wd / "resources" / "data" / "mul").glob("*.json*"))


# ------------------------------------------------------------------------------------ model, tokenizer


def train_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqmatch.train", "--method", "mle", "--train-file", "train.jsonl",
                           "--out-dir", "run", "--steps", "2", "--batch-size", "2", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """A training file, a working tokenizer, a model directory without tokenizer files and a
    tokenizer of special tokens only (what transformers builds from such a directory)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from seqmatch.data import train_tokenizer

    d = tmp_path_factory.mktemp("train")
    rows = [{"prompt": f"{r['question']} Solution:", "completion": " " + r["answer"]} for r in QA]
    (d / "train.jsonl").write_text(lines(rows))
    train_tokenizer([r["prompt"] + r["completion"] for r in rows], vocab_size=300, out_dir=d / "tok")
    (d / "model").mkdir()
    (d / "model" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), bos_token="<s>",
                            eos_token="</s>").save_pretrained(d / "specials-only")
    from test_own_model import save_tiny_models

    shutil.copytree(save_tiny_models(tmp_path_factory.mktemp("own"))["neox"], d / "neox")
    return d


BAD_TRAIN = [
    (["--tokenizer", "model"], ["tokenizer 'model' (config key tokenizer.name_or_path, flag --tokenizer)",
                                "no tokenizer files", "tokenizer.save_pretrained(DIR)"], "model dir as tokenizer"),
    (["--tokenizer", "./tokenizers/mine"], ["tokenizer './tokenizers/mine'", "no such file or directory"],
     "tokenizer path typo"),
    (["--tokenizer", "specials-only"], ["tokenizer 'specials-only'", "no tokens besides its special tokens"],
     "tokenizer of special tokens only"),
    (["--tokenizer", "tok", "--name-or-path", "./models/tiny-neox"],
     ["model './models/tiny-neox' (config key model.name_or_path, flag --name-or-path)", "no such file or directory"],
     "model path typo"),
    (["--tokenizer", "tok", "--name-or-path", "tok"],
     ["model 'tok' (config key model.name_or_path", "no config.json", "model.save_pretrained(DIR)"],
     "tokenizer dir as model"),
    (["--tokenizer", "tok", "--name-or-path", "neox"],
     ["the tokenizer (config key tokenizer.name_or_path, flag --tokenizer) is not model 'neox''s own",
      "model.new_tokenizer: true"], "a tokenizer not the model's own"),
]


@pytest.mark.parametrize("args,needles,why", BAD_TRAIN, ids=[c[2] for c in BAD_TRAIN])
def test_bad_model_or_tokenizer_stops_training_before_it_starts(train_dir, args, needles, why):
    res = train_cli(train_dir, *args)
    err = res.stderr.strip()
    assert res.returncode == 2, res.stdout + err
    assert "Traceback" not in err and "Repo id must be in the form" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("error: "), last
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    assert not (train_dir / "run").exists(), "the run directory was created"
