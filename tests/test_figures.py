"""Figure 2: the data the figure draws is seqmatch's own transform output and equals the paper's."""

import pytest

from seqmatch import figures
from seqmatch.actions import BKSPC_TOKEN


def test_figure2_data_equals_paper():
    d = figures.figure2_data()
    # Figure 2 of the paper, typed in here as the independent reference
    assert d["actions"] == ["Apples", "are", "blue", BKSPC_TOKEN, "green"]
    assert d["inputs"] == ["<bos>", "Apples", "are", "blue", "are", "green"]
    assert d["targets"] == ["Apples", "are", "blue", BKSPC_TOKEN, "green", "N/A"]
    assert d["position_ids"] == [0, 1, 2, 3, 2, 3]
    assert d["states"] == [
        ["<bos>"],
        ["<bos>", "Apples"],
        ["<bos>", "Apples", "are"],
        ["<bos>", "Apples", "are", "blue"],
        ["<bos>", "Apples", "are"],
        ["<bos>", "Apples", "are", "green"],
    ]
    # mask by hand: row i lists the inputs of state S_i (the copy of "are" replaces input 2)
    visible = {0: {0}, 1: {0, 1}, 2: {0, 1, 2}, 3: {0, 1, 2, 3}, 4: {0, 1, 4}, 5: {0, 1, 4, 5}}
    assert d["mask"] == [[j in visible[i] for j in range(6)] for i in range(6)]


class SplitVocab:
    """A vocabulary in which 'blue' is two tokens, 'bl' 'ue' (duck-types figures.WordVocab)."""

    itos = ["<bos>", "<eos>", "<pad>", BKSPC_TOKEN, "Apples", "are", "bl", "ue", "green"]
    bos_id, eos_id, bkspc_id = 0, 1, 3

    def word_ids(self, word, first):
        return [6, 7] if word == "blue" else [self.itos.index(word)]

    def token_str(self, i):
        return self.itos[i]


def test_multi_token_word_is_deleted_with_as_many_backspaces():
    d = figures.figure2_data(SplitVocab())
    B = BKSPC_TOKEN
    assert d["actions"] == ["Apples", "are", "bl", "ue", B, B, "green"]
    assert d["inputs"] == ["<bos>", "Apples", "are", "bl", "ue", "bl", "are", "green"]
    assert d["position_ids"] == [0, 1, 2, 3, 4, 3, 2, 3]
    assert d["targets"] == ["Apples", "are", "bl", "ue", B, B, "green", "N/A"]
    assert d["states"][-1] == ["<bos>", "Apples", "are", "green"]
    assert d["states"][5] == ["<bos>", "Apples", "are", "bl"]


def _word_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<bos>", "<eos>", "<pad>", BKSPC_TOKEN, "<unk>", "Apples", "are",
                                           "blue", "green", "red"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=[BKSPC_TOKEN])
    fast.save_pretrained(path)
    return vocab


def test_cli_with_tokenizer_and_without(tmp_path):
    tokdir = tmp_path / "tok"
    vocab = _word_tokenizer(tokdir)
    v = figures.load_vocab(str(tokdir))
    d = figures.figure2_data(v)
    assert d["input_ids"] == [vocab[w] for w in ["<bos>", "Apples", "are", "blue", "are", "green"]]
    assert d["inputs"] == ["<bos>", "Apples", "are", "blue", "are", "green"]
    assert d["position_ids"] == [0, 1, 2, 3, 2, 3]
    assert d["label_ids"][3] == vocab[BKSPC_TOKEN]
    for args in (["--tokenizer", str(tokdir)], []):
        pdf, png = tmp_path / "f2.pdf", tmp_path / "f2.png"
        figures.main(["figure2", *args, "--out-pdf", str(pdf), "--out-png", str(png)])
        assert pdf.read_bytes()[:4] == b"%PDF" and png.read_bytes()[:4] == b"\x89PNG"
        pdf.unlink(), png.unlink()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_tokenizer_without_bkspc_is_rejected(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({"<bos>": 0, "<unk>": 1, "a": 2}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", unk_token="<unk>")
    with pytest.raises(ValueError, match="bkspc"):
        figures.TokenizerVocab(fast)
