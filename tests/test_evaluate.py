"""seqmatch.evaluate: the pure helpers against hand-computed values, then every subcommand end to
end on a tiny random model saved with seqmatch.model.save_model (and, for the arithmetic metrics,
on canned sampler outputs whose accuracy / <bkspc> rates are computed by hand)."""

import csv
import json

import numpy as np
import pytest

from seqmatch import evaluate as ev

# ---------------------------------------------------------------------------------------------
# pure helpers


def test_continuation_after_common_prefix():
    assert ev.common_prefix_len([1, 2, 3], [1, 2, 4]) == 2
    assert ev.continuation([1, 2, 3, 9, 8], [1, 2, 3]) == [9, 8]
    # the model backspaced over the prompt's last token and rewrote it
    assert ev.continuation([1, 2, 7, 8], [1, 2, 3]) == [7, 8]
    # ... or deleted it and stopped
    assert ev.continuation([1, 2], [1, 2, 3]) == []
    assert ev.continuation([], [1]) == []


def test_truncate_references_pairwise():
    refs = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    gens = [[0, 0], [], [0, 0, 0, 0, 0]]
    assert ev.truncate_references(refs, gens) == [[1, 2], [], [9, 10]]
    with pytest.raises(ValueError):
        ev.truncate_references(refs, gens[:2])


class CharTok:
    """Tokenizer stand-in: id = ord(char); decode concatenates."""

    all_special_ids = [0, 1, 2, 3]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def __len__(self):
        return 128


def test_decode_actions_shows_bkspc_and_eos():
    tok = CharTok()
    BK, EOS = 3, 2
    acts = [ord("a"), ord("b"), BK, ord("c"), BK, BK, ord("x"), ord("y"), EOS]
    assert ev.decode_actions(tok, acts, bkspc_id=BK, eos_id=EOS) == "ab<bkspc>c<bkspc><bkspc>xy<eos>"
    assert ev.decode_actions(tok, [], bkspc_id=BK) == ""


def test_mistake_text_is_a_wrong_start_in_the_base():
    rng = np.random.default_rng(0)
    seen_len = set()
    for _ in range(300):
        m = ev.mistake_text(" -3311111", 5, rng)
        assert m.startswith(" -")
        digits = m[2:]
        assert 1 <= len(digits) <= 4 and set(digits) <= set("01234")
        assert not "-3311111".startswith("-" + digits)
        seen_len.add(len(digits))
    assert seen_len == {1, 2, 3, 4}
    # base 2, answer "1", one digit: the only wrong digit is 0
    assert {ev.mistake_text(" 1", 2, rng, n_digits=1) for _ in range(20)} == {" 0"}
    # positive answer: no sign
    assert ev.mistake_text(" 4407", 8, rng)[0] == " " and ev.mistake_text(" 4407", 8, rng)[1] != "-"
    with pytest.raises(ValueError):
        ev.mistake_text(" 12", 16, rng)
    # same seed, same mistakes
    a = [ev.mistake_text(" 42", 10, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1


def test_replace_last_token():
    rng = np.random.default_rng(0)
    prompt = [10, 11, 12]
    seen = set()
    for _ in range(200):
        new, orig, tok = ev.replace_last_token(prompt, [12, 20, 21, 22], rng)
        assert new[:2] == [10, 11] and new[-1] == tok and orig == 12 and tok in (20, 21, 22)
        seen.add(tok)
    assert seen == {20, 21, 22}
    assert ev.replace_last_token([5, 6], [6, 9], rng)[0] == [5, 9]
    with pytest.raises(ValueError):
        ev.replace_last_token([5, 6], [6], rng)


def test_recovery_summary_on_hand_made_completions():
    """Five mistake-prompted completions (prompt "... Solution: 5", "... Solution: 81", ...), char ids:
    A deletes the mistake and writes the answer; B deletes it and writes a wrong one; C continues the
    mistake; D writes a digit, then deletes back and is still wrong; E deletes and writes the answer
    with spaces between its digits, then <eos>. By hand: correct A, E = 2/5; first action <bkspc>
    A, B, E = 3/5; at least one <bkspc> A, B, D, E = 4/5; 2 + 3 + 0 + 3 + 2 = 10 <bkspc> among
    5 + 6 + 1 + 7 + 11 = 30 actions."""
    BK, EOS = 3, 2
    c = lambda s: [ord(x) for x in s]  # noqa: E731
    actions = [
        [BK, BK] + c(" 42"),                  # A: " 5" deleted (2 tokens), " 42"
        [BK, BK, BK] + c(" 17"),              # B: " 81" deleted, " 17" (answer 24)
        c("3"),                               # C: " 5" + "3"
        c("9") + [BK, BK, BK] + c(" 60"),     # D: " 59" deleted, " 60" (answer 6)
        [BK, BK] + c(" 4 4 0 7") + [EOS],     # E: " 4 4 0 7" is 4407 once whitespace is removed
    ]
    finals = ["Q1 Solution: 42", "Q2 Solution: 17", "Q3 Solution: 53", "Q4 Solution: 60",
              "Q5 Solution: 4 4 0 7"]
    res = ev.recovery_summary(finals, ["42", "24", "-3", "6", "4407"], actions, BK)
    assert res["n"] == 5
    assert res["final_state_correct"] == pytest.approx(0.4) and res["n_final_state_correct"] == 2
    assert res["first_action_bkspc"] == pytest.approx(0.6) and res["n_first_action_bkspc"] == 3
    assert res["seq_bkspc_frac"] == pytest.approx(0.8)
    assert res["bkspc_rate"] == pytest.approx(10 / 30)
    assert res["correct"] == [True, False, False, False, True]
    empty = ev.recovery_summary([], [], [], BK)
    assert empty["n"] == 0 and np.isnan(empty["final_state_correct"]) and np.isnan(empty["first_action_bkspc"])
    with pytest.raises(ValueError):
        ev.recovery_summary(finals, ["42"], actions, BK)


def test_ordinary_token_ids_excludes_specials():
    assert ev.ordinary_token_ids(CharTok(), vocab_size=8) == [4, 5, 6, 7]


class WordTok:
    """Tokenizer stand-in: whitespace words that are integers."""

    def encode(self, text, add_special_tokens=False):
        return [int(w) for w in text.split()]


def test_text_pool_prompts_and_references():
    rows = [
        {"prompt": "", "completion": "1 2 3 4 5 6 7"},
        {"prompt": "", "completion": "8 9 10"},  # too short for P + G = 5
        {"prompt": "", "completion": "11 12 13 14 15"},
    ]
    pool = ev.text_pool(rows, WordTok(), prompt_tokens=2, new_tokens=3)
    assert pool == [
        {"row": 0, "prompt_ids": [1, 2], "ref_ids": [3, 4, 5]},
        {"row": 2, "prompt_ids": [11, 12], "ref_ids": [13, 14, 15]},
    ]


def test_draw_indices():
    a0 = ev.draw_indices(100, 10, seed=3, draw=0)
    a1 = ev.draw_indices(100, 10, seed=3, draw=1)
    assert len(set(a0)) == 10 and all(0 <= i < 100 for i in a0)
    assert a0 == ev.draw_indices(100, 10, seed=3, draw=0)
    assert a0 != a1
    assert ev.draw_indices(5, 10, seed=0, draw=0) == [0, 1, 2, 3, 4]


def test_json_is_standard_and_atomic(tmp_path):
    from seqmatch.io import write_csv, write_json

    p = tmp_path / "sub" / "x.json"
    write_json(str(p), {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(0.5), "d": np.int64(3)})
    assert json.loads(p.read_text()) == {"a": None, "b": [1.0, None], "c": 0.5, "d": 3}
    write_csv(str(tmp_path / "t.csv"), [{"x": "a,b", "y": "line\nbreak", "z": "dropped"}], ["x", "y"])
    with open(tmp_path / "t.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"x": "a,b", "y": "line\nbreak"}]
    assert not [q for q in tmp_path.rglob(".tmp-*")]


def test_effective_max_new_tokens():
    class M:
        max_positions = 20

    assert ev.effective_max_new_tokens(M(), [[1] * 5, [1] * 9], 4) == 4
    # position ids 0 (<bos>) .. 9 + k must stay below 20: k <= 10
    assert ev.effective_max_new_tokens(M(), [[1] * 5, [1] * 9], 50) == 10
    with pytest.raises(SystemExit):
        ev.effective_max_new_tokens(M(), [[1] * 19], 5)


def test_data_source(tmp_path):
    assert ev.data_source([{"source": "a"}, {"source": "b"}, {"source": "a"}], "x") == "a; b"
    (tmp_path / "meta.json").write_text(json.dumps({"source": "gen"}))
    assert ev.data_source([{}], str(tmp_path / "test.jsonl")) == "gen"


# ---------------------------------------------------------------------------------------------
# end to end on a tiny random model

ARITH = [("In base 8, what is 4354 + 33?", "4407", 8), ("In base 5, what is 10 + -3311121?", "-3311111", 5),
         ("In base 2, what is 101 + 1?", "110", 2), ("What is 12 + 30?", "42", 10)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from seqmatch.data import arithmetic_row, train_tokenizer, translation_row
    from seqmatch.model import ModelConfig, build_model, save_model

    d = tmp_path_factory.mktemp("eval")
    arith = [arithmetic_row(q, a, "add_or_sub_in_base", "unit-test-arith") for q, a, _ in ARITH]
    text = [{"prompt": "", "completion": " ".join(f"word{(i * 7 + j) % 13} the cat sat" for j in range(12)),
             "source": "unit-test-text"} for i in range(10)]
    trans = [translation_row(f"The cat number {i} sleeps", f"Le chat numero {i} dort", "unit-test-fr", "MIT")
             for i in range(5)]
    files = {}
    for name, rows in (("arith", arith), ("text", text), ("trans", trans)):
        files[name] = d / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = train_tokenizer([r["prompt"] + r["completion"] for r in arith + text + trans] * 3, vocab_size=300,
                          min_frequency=1)
    torch.manual_seed(0)
    cfg = ModelConfig(arch="llama", n_layer=1, n_head=2, d_model=16, d_ff=32, max_position_embeddings=128)
    save_model(build_model(cfg, tok), tok, d / "model")
    return {"dir": d, "model": str(d / "model"), **{k: str(v) for k, v in files.items()}}


def test_arithmetic_metrics_on_canned_samples(tiny, monkeypatch):
    """Accuracy and <bkspc> rates from known sampler outputs: row 0 answers 4417, backspaces twice
    and writes 4407 (correct); row 1 answers -3311111 (correct); rows 2, 3 answer wrong."""
    from seqmatch.actions import apply_backspaces
    from seqmatch.model import load_model
    from seqmatch.sampling import SampleOutput

    _, tok = load_model(tiny["model"])
    BK, EOS = tok.convert_tokens_to_ids("<bkspc>"), tok.eos_token_id
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    canned = [enc(" 4417") + [BK, BK] + enc("07") + [EOS],  # " 4417" -> " 44" -> " 4407"
              enc(" -3311111") + [EOS],
              enc(" 111") + [EOS],
              enc(" 4") + [BK] + enc("3")]  # not finished, wrong

    def fake_sample(model, tok_, prompts, *, max_new_tokens, seed, **sampling):
        states = [apply_backspaces(p + a, BK) for p, a in zip(prompts, canned)]
        states = [s[:-1] if s and s[-1] == EOS else s for s in states]
        return SampleOutput(actions=canned, states=states, finished=[a[-1] == EOS for a in canned],
                            prompts=prompts)

    monkeypatch.setattr(ev.common, "sample", fake_sample)
    out, gen = tiny["dir"] / "a.json", tiny["dir"] / "a.jsonl"
    ev.main(["arithmetic", "--model-dir", tiny["model"], "--test-file", tiny["arith"], "--out", str(out),
             "--generations", str(gen)])
    res = json.loads(out.read_text())
    assert {"accuracy", "n", "bkspc_rate", "seq_bkspc_frac", "task", "model_dir", "source"} <= set(res)
    assert res["accuracy"] == 0.5 and res["n"] == 4
    n_actions = sum(len(a) for a in canned)
    assert res["bkspc_rate"] == pytest.approx(3 / n_actions)
    assert res["seq_bkspc_frac"] == 0.5
    assert res["source"] == "unit-test-arith" and res["task"] == "add_or_sub_in_base"
    rows = [json.loads(line) for line in gen.read_text().splitlines()]
    assert [r["correct"] for r in rows] == [True, True, False, False]
    assert rows[0]["actions"] == " 4417<bkspc><bkspc>07<eos>"
    assert rows[0]["final_text"].endswith("Solution: 4407")
    assert rows[3]["actions"] == " 4<bkspc>3" and rows[3]["finished"] is False


def test_arithmetic_and_translation_end_to_end(tiny):
    out, gen = tiny["dir"] / "a2.json", tiny["dir"] / "a2.jsonl"
    ev.main(["arithmetic", "--model-dir", tiny["model"], "--test-file", tiny["arith"], "--out", str(out),
             "--generations", str(gen), "--n", "3", "--max-new-tokens", "8", "--seed", "1"])
    res = json.loads(out.read_text())
    assert res["n"] == 3 and 0 <= res["accuracy"] <= 1
    assert len(gen.read_text().splitlines()) == 3
    # more actions than the model has positions: capped, not refused
    ev.main(["arithmetic", "--model-dir", tiny["model"], "--test-file", tiny["arith"], "--out", str(out),
             "--generations", str(gen), "--n", "1", "--max-new-tokens", "1000"])
    s = json.loads(out.read_text())["sampling"]
    assert s["max_new_tokens"] == 1000 and 0 < s["max_new_tokens_effective"] < 128
    tr = tiny["dir"] / "tr.json"
    ev.main(["translation", "--model-dir", tiny["model"], "--test-file", tiny["trans"], "--out", str(tr),
             "--max-new-tokens", "8"])
    res = json.loads(tr.read_text())
    assert {"bleu", "signature", "n"} <= set(res) and res["n"] == 5
    assert "sacrebleu" in res["signature"] or "13a" in res["signature"]
    assert 0 <= res["bleu"] <= 100


def test_mistake_tables_end_to_end(tiny):
    t1 = tiny["dir"] / "t1.csv"
    ev.main(["mistakes", "--model-dir", tiny["model"], "--test-file", tiny["arith"], "--out", str(t1), "--n", "3",
             "--seed", "2", "--max-new-tokens", "6"])
    with open(t1, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["ground_truth_qa", "prompt_with_mistake", "completion_actions", "final_state"]
    assert len(rows) == 3
    for r, (q, a, base) in zip(rows, ARITH):
        assert r["ground_truth_qa"] == f"{q} Solution: {a}"
        prefix = f"{q} Solution: "
        assert r["prompt_with_mistake"].startswith(prefix)
        mistake = r["prompt_with_mistake"][len(prefix):]
        digits = mistake.lstrip("-")
        assert digits and set(digits) <= set(str(d) for d in range(base)) and not a.startswith(mistake)
    t8 = tiny["dir"] / "t8.csv"
    ev.main(["text-mistakes", "--model-dir", tiny["model"], "--test-file", tiny["text"], "--out", str(t8),
             "--n", "2", "--prompt-tokens", "8", "--new-tokens", "5"])
    with open(t8, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and list(rows[0]) == ["prompt", "completion"]


def test_mistakes_summary_on_canned_samples(tiny, monkeypatch):
    """--summary from known completions of the four mistake prompts: row 0 deletes the mistake and
    writes 4407 (correct), row 1 continues the mistake (wrong), row 2 deletes it and writes 111
    (wrong; the answer is 110), row 3 deletes it and writes 42 (correct). By hand: final state
    correct 2/4, first action <bkspc> 3/4. The CSV holds the same completions."""
    from seqmatch.actions import apply_backspaces
    from seqmatch.model import load_model
    from seqmatch.sampling import SampleOutput

    _, tok = load_model(tiny["model"])
    BK, EOS = tok.convert_tokens_to_ids("<bkspc>"), tok.eos_token_id
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    questions = [enc(f"{q} Solution:") for q, _, _ in ARITH]
    seen = {}

    def fake_sample(model, tok_, prompts, *, max_new_tokens, seed, **sampling):
        canned = []
        for i, (p, q) in enumerate(zip(prompts, questions)):
            undo = [BK] * (len(p) - len(q))  # delete exactly the mistake's tokens
            canned.append([undo + enc(" 4407") + [EOS], enc("0") + [EOS], undo + enc(" 111") + [EOS],
                           undo + enc(" 42") + [EOS]][i])
        seen["prompts"] = prompts
        states = [apply_backspaces(p + a, BK)[:-1] for p, a in zip(prompts, canned)]
        return SampleOutput(actions=canned, states=states, finished=[True] * 4, prompts=prompts)

    monkeypatch.setattr(ev.common, "sample", fake_sample)
    out, summary = tiny["dir"] / "m.csv", tiny["dir"] / "m.json"
    ev.main(["mistakes", "--model-dir", tiny["model"], "--test-file", tiny["arith"], "--out", str(out),
             "--n", "4", "--seed", "5", "--summary", str(summary)])
    res = json.loads(summary.read_text())
    assert res["n"] == 4
    assert res["final_state_correct"] == 0.5 and res["n_final_state_correct"] == 2
    assert res["first_action_bkspc"] == 0.75 and res["n_first_action_bkspc"] == 3
    assert res["correct"] == [True, False, False, True]
    assert res["mistake_seed"] == 5 and len(res["mistakes"]) == 4 and res["source"] == "unit-test-arith"
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["final_state"] for r in rows] == ["4407", rows[1]["prompt_with_mistake"].split("Solution: ")[1] + "0",
                                                 "111", "42"]
    assert rows[0]["completion_actions"].startswith("<bkspc>") and not rows[1]["completion_actions"].startswith("<")
    # the same seed draws the same mistakes, whatever the model (every run sees the same prompts)
    first = seen["prompts"]
    ev.main(["mistakes", "--model-dir", tiny["model"], "--test-file", tiny["arith"], "--out", str(out),
             "--n", "4", "--seed", "5"])
    assert seen["prompts"] == first


def test_text_end_to_end(tiny):
    keys = {"mauve_mean", "mauve_sd", "ngram_entropy_mean", "ngram_entropy_sd", "diversity_mean", "diversity_sd",
            "perplexity", "featurizer", "mauve_settings", "n_samples", "draws"}
    out = tiny["dir"] / "t.json"
    ev.main(["text", "--model-dir", tiny["model"], "--test-file", tiny["text"], "--out", str(out),
             "--prompt-tokens", "8", "--new-tokens", "10", "--n-samples", "6", "--draws", "2",
             "--featurizer", "minilm", "--seed", "0", "--heldout-ppl-rows", "3"])
    res = json.loads(out.read_text())
    assert keys <= set(res)
    assert res["n_samples"] == 6 and res["draws"] == 2 and len(res["per_draw"]) == 2
    assert res["per_draw"][0]["rows"] != res["per_draw"][1]["rows"]  # each draw its own prompts
    assert 0 < res["mauve_mean"] <= 1
    # a random model over a 300-token vocabulary: perplexity of the order of the vocabulary size
    assert 50 < res["perplexity"] < 3000 and res["perplexity_detail"]["n_rows"] == 3
    assert res["mauve_settings"]["max_tokens"] == 10
    out_cs = tiny["dir"] / "tc.json"
    ev.main(["text", "--decoding", "contrastive", "--k", "3", "--model-dir", tiny["model"], "--test-file",
             tiny["text"], "--out", str(out_cs), "--prompt-tokens", "8", "--new-tokens", "6", "--n-samples", "4",
             "--draws", "2", "--featurizer", "minilm"])
    res = json.loads(out_cs.read_text())
    assert keys <= set(res) and res["perplexity"] is None and res["decoding"] == "contrastive"
    assert res["bkspc_rate"] == 0.0  # contrastive search never backspaces
