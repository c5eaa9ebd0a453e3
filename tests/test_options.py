"""seqmatch.options: a CLI's options from one config file (``--config FILE``), as the workflow hands
them to seqmatch.evaluate / seqmatch.data / seqmatch.toychain. The reference for every value is the
same parser reading the equivalent flags."""

import json
from pathlib import Path

import pytest
import yaml

from seqmatch.data.cli import build_parser as data_parser
from seqmatch.evaluate import build_parser as eval_parser
from seqmatch.options import parse_args


def write(tmp_path, values, name="job.json"):
    p = tmp_path / name
    p.write_text(json.dumps(values) if name.endswith(".json") else yaml.safe_dump(values))
    return str(p)


EVAL_TEXT = {  # tasks.text.eval of config.yaml, plus the job's paths
    "model_dir": "runs/m/model", "test_file": "data/test.jsonl", "out": "runs/m/eval_sample.json",
    "prompt_tokens": 32, "new_tokens": 32, "n_samples": 100, "draws": 2, "featurizer": "minilm",
    "heldout_ppl_rows": 200, "contrastive_k": 5, "penalty_alpha": 0.6, "decoding": "contrastive", "seed": 3,
}


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_config_file_equals_the_same_flags(tmp_path, suffix):
    path = write(tmp_path, EVAL_TEXT, f"job.{suffix}")
    from_file = vars(parse_args(eval_parser(), ["text", "--config", path]))
    flags = ["text"]
    for k, v in EVAL_TEXT.items():
        flags += [f"--{k.replace('_', '-')}", str(v)]
    from_flags = vars(parse_args(eval_parser(), flags))
    assert from_file.pop("config") == path and from_flags.pop("config") is None
    assert from_file == from_flags
    # config.yaml's names reach the code: contrastive_k is args.contrastive_k (no --k/args.k rename)
    assert from_file["contrastive_k"] == 5 and from_file["prompt_tokens"] == 32


def test_flags_override_the_file_and_fill_what_it_lacks(tmp_path):
    path = write(tmp_path, {"test_file": "t.jsonl", "out": "o.csv", "n_examples": 200, "seed": 0,
                            "max_new_tokens": 48})
    args = parse_args(eval_parser(), ["mistakes", "--config", path, "--model-dir", "best/model", "--seed", "7"])
    assert (args.model_dir, args.seed, args.n_examples, args.max_new_tokens) == ("best/model", 7, 200, 48)
    assert args.temperature == 1.0  # neither: the CLI's default


def test_nargs_and_types_are_read_as_on_the_command_line(tmp_path):
    path = write(tmp_path, {"task": "mul", "out_dir": "d", "entropy": [1, 3], "n_train": "5000", "seed": 1234})
    args = parse_args(data_parser(), ["arithmetic", "--config", path])
    ref = data_parser().parse_args(["arithmetic", "--task", "mul", "--out-dir", "d", "--entropy", "1", "3",
                                    "--n-train", "5000", "--seed", "1234"])
    assert vars(args) | {"config": None} == vars(ref) | {"config": None}
    assert args.entropy == [1.0, 3.0] and isinstance(args.n_train, int)


@pytest.mark.parametrize("values, words", [
    ({"n_eval": 5, "n_evl": 3}, ["unknown key(s) n_evl"]),
    ({"n_eval": "many"}, ["key 'n_eval' = 'many'", "invalid literal"]),
    ({"n_eval": True}, ["key 'n_eval' = True"]),
    ({"temperature": 1, "top_k": 0, "device": "cpu", "batch_size": 4, "seed": 0, "out": "o", "n_eval": None,
      "generations": "g", "max_new_tokens": 8, "top_p": 1.0, "model_dir": "m", "test_file": "t",
      "decoding": "beam"}, ["unknown key(s) decoding"]),  # arithmetic has no --decoding
])
def test_bad_values_are_one_error_naming_file_and_key(tmp_path, capsys, values, words):
    path = write(tmp_path, {"model_dir": "m", "test_file": "t", "out": "o", "generations": "g", **values})
    with pytest.raises(SystemExit) as exc:
        parse_args(eval_parser(), ["arithmetic", "--config", path])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and path in err
    for w in words:
        assert w in err, err


def test_choices_and_unreadable_files(tmp_path, capsys):
    path = write(tmp_path, {**EVAL_TEXT, "decoding": "beam"})
    with pytest.raises(SystemExit):
        parse_args(eval_parser(), ["text", "--config", path])
    assert "key 'decoding' = 'beam': expected one of sample, contrastive" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        parse_args(eval_parser(), ["text", "--config", str(bad)])
    assert f"--config {bad}: cannot read it as JSON" in capsys.readouterr().err
    listed = write(tmp_path, [1, 2], "list.yaml")
    with pytest.raises(SystemExit):
        parse_args(eval_parser(), ["text", "--config", listed])
    assert "expected a mapping" in capsys.readouterr().err


def test_required_options_stay_required_unless_the_file_sets_them(tmp_path, capsys):
    path = write(tmp_path, {"test_file": "t", "out": "o"})
    with pytest.raises(SystemExit):
        parse_args(eval_parser(), ["translation", "--config", path])
    assert "--model-dir" in capsys.readouterr().err


def test_toychain_takes_config_yaml_figure1_section(tmp_path, monkeypatch):
    """The workflow hands seqmatch.toychain config.yaml's figure1 keys unchanged (chain_lengths)."""
    import seqmatch.toychain as tc

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["figure1"]
    seen = {}

    def make_figure(n, emp):  # stop before drawing: only the chain lengths matter here
        seen["n"] = n
        raise RuntimeError("stop")

    monkeypatch.setattr(tc, "make_figure", make_figure)
    path = write(tmp_path, {**cfg, "empirical_steps": 0, "out_pdf": "a.pdf", "out_png": "a.png"})
    with pytest.raises(RuntimeError, match="stop"):
        tc.main(["--config", path])
    assert seen["n"] == cfg["chain_lengths"]


@pytest.mark.parametrize("command, values, words", [
    ("arithmetic", {"task": "mul", "out_dir": "d", "entropy": 2}, "key 'entropy' = 2: expected a list"),
    ("arithmetic", {"task": "mul", "out_dir": "d", "entropy": [1, 2, 3]}, "expected a list of 2 values, got 3"),
    ("arithmetic", {"task": "mul", "out_dir": "d", "n_train": [1, 2]}, "key 'n_train' = [1, 2]: expected one value"),
    ("arithmetic", {"task": "mul", "out_dir": "d", "no_streaming": "false"}, "expected true or false"),
    ("tokenizer", {"vocab_size": 64, "out_dir": "d", "corpus": "a.jsonl"}, "key 'corpus' = 'a.jsonl': expected a list"),
    ("tokenizer", {"vocab_size": 64, "out_dir": "d", "corpus": []}, "at least one value"),
    ("arithmetic", {"task": "mul", "out_dir": None}, "key 'out_dir' is null, but the option is required"),
])
def test_file_values_have_the_command_lines_shape(tmp_path, capsys, command, values, words):
    with pytest.raises(SystemExit):
        parse_args(data_parser(), [command, "--config", write(tmp_path, values)])
    assert words in capsys.readouterr().err


def test_the_parser_is_left_as_it_was(tmp_path, capsys):
    """A second parse with the same parser object sees none of the first file's values."""
    p = eval_parser()
    path = write(tmp_path, {"model_dir": "m1", "test_file": "t", "out": "o", "generations": "g", "n_eval": 5})
    assert parse_args(p, ["arithmetic", "--config", path]).n_eval == 5
    args = parse_args(p, ["arithmetic", "--model-dir", "m", "--test-file", "t", "--out", "o", "--generations", "g"])
    assert args.n_eval is None and args.model_dir == "m"
    with pytest.raises(SystemExit):
        parse_args(p, ["arithmetic"])  # required again
    assert "--model-dir" in capsys.readouterr().err


def test_a_file_named_like_a_subcommand_is_not_one(tmp_path, monkeypatch):
    """`--config text arithmetic`: the file (here named text) may come before the subcommand."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text").write_text(yaml.safe_dump({"model_dir": "m", "test_file": "t", "out": "o",
                                                   "generations": "g"}))
    for argv in (["--config", "text", "arithmetic"], ["arithmetic", "--config", "text"]):
        args = parse_args(eval_parser(), argv)
        assert (args.command, args.generations, args.config) == ("arithmetic", "g", "text"), argv
