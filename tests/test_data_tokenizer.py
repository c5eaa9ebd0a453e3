"""Tokenizers: the offline BPE round-trips text, keeps <bkspc> one id, splits digits; a pretrained
tokenizer gets <bkspc> (and <pad>) added; evaluation prompts of a fixed token length."""

from __future__ import annotations

import json

import pytest

from seqmatch import data as D

CORPUS = [
    {"prompt": "In base 7, what is -1240 - -4156? Solution:", "completion": " 2616"},
    {"prompt": "What is 12 times 34?  Solution:", "completion": " 408"},
    {"prompt": "English: Save the document\nFrench:", "completion": " Enregistrer le document"},
    {"prompt": "", "completion": "The quick brown fox jumps over the lazy dog. Élève, café, naïve."},
    {"prompt": "", "completion": "Anarchism is a political philosophy that advocates self-governed societies."},
] * 20

ROUND_TRIP = [
    "  leading spaces and trailing  ", " 2616", "\n\nnew\tlines\r\n", "x . y ,z", "Élève à l'école — 10 %",
    "emoji 😀 and 中文 text", "In base 7, what is -1240 - -4156? Solution: 2616", "", " ", "a<b>c</b>",
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    corpus = d / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in CORPUS), encoding="utf-8")
    out = d / "tokenizer"
    meta = D.main(["tokenizer", "--corpus", str(corpus), "--vocab-size", "300", "--out-dir", str(out)])
    assert meta["special_tokens"] == {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<bkspc>": 3}
    return out


def test_specials_and_vocab(tok_dir):
    tok = D.load_tokenizer(tok_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<bos>", "<eos>", "<pad>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<pad>", "<bos>", "<eos>", "<bkspc>")}
    assert sorted(ids.values()) == [0, 1, 2, 3]
    assert len(tok) <= 300
    assert json.loads((tok_dir / "meta.json").read_text())["inputs"][0]["name"] == "corpus.jsonl"


def test_bkspc_string_is_the_actions_constant():
    from seqmatch.actions import BKSPC_TOKEN

    assert D.BKSPC_TOKEN == BKSPC_TOKEN


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(tok_dir, text):
    tok = D.load_tokenizer(tok_dir)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.decode(tok(text)["input_ids"]) == text  # no specials added by default


def test_concatenated_prompt_and_completion_decode_to_the_row(tok_dir):
    tok = D.load_tokenizer(tok_dir)
    for r in CORPUS[:5]:
        ids = tok.encode(r["prompt"], add_special_tokens=False) + tok.encode(r["completion"], add_special_tokens=False)
        assert tok.decode(ids) == r["prompt"] + r["completion"]


def test_bkspc_is_one_id(tok_dir):
    tok = D.load_tokenizer(tok_dir)
    b = tok.convert_tokens_to_ids("<bkspc>")
    assert tok.encode("<bkspc>", add_special_tokens=False) == [b]
    ids = tok.encode("12<bkspc>3", add_special_tokens=False)
    assert ids.count(b) == 1 and len(ids) == 4
    assert tok.decode([b]) == "<bkspc>"


def test_digits_are_split_one_by_one(tok_dir):
    tok = D.load_tokenizer(tok_dir)
    for text in ["1240", " 4156", "-576122", "x2616y", "12 times 34", "In base 7, what is 1000000 + 99999?"]:
        ids = tok.encode(text, add_special_tokens=False)
        pieces = [tok.decode([i]) for i in ids]
        assert "".join(pieces) == text
        n_digits = sum(ch.isdigit() for ch in text)
        assert sum(p.isdigit() for p in pieces) == n_digits  # every digit is a whole token ...
        assert all(len(p) == 1 for p in pieces if any(ch.isdigit() for ch in p))  # ... and alone in it


def test_load_tokenizer_adds_bkspc_and_pad_to_a_pretrained_one(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, "hello": 3, "world": 4}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(tmp_path / "pre")
    tok = D.load_tokenizer(tmp_path / "pre")
    b = tok.convert_tokens_to_ids("<bkspc>")
    assert b == 5 and tok.pad_token == "<pad>" and tok.pad_token_id == 6
    assert tok.encode("hello <bkspc> world", add_special_tokens=False) == [3, b, 4]
    plain = D.load_tokenizer(tmp_path / "pre", add_bkspc=False)
    assert "<bkspc>" not in plain.get_vocab()
