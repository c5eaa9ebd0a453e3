import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# CI has 2 cores; one thread per test process keeps timings predictable.
torch.set_num_threads(1)


import json  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A word-level tokenizer and a copy task: 'a b c Solution:' -> ' a b c' (learnable fast); the
    trainer's tests (test_train, test_multiprocess) train on it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("toy")
    words = ["<bos>", "<eos>", "<pad>", "<bkspc>", "Solution:"] + [str(i) for i in range(8)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", additional_special_tokens=["<bkspc>"])
    fast.save_pretrained(d / "tok")
    g = torch.Generator().manual_seed(0)
    with open(d / "train.jsonl", "w") as f:
        for _ in range(200):
            xs = " ".join(str(int(v)) for v in torch.randint(0, 8, (3,), generator=g))
            f.write(json.dumps({"prompt": f"{xs} Solution:", "completion": f" {xs}", "base": 8}) + "\n")
    return d
