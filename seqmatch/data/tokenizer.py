"""Tokenizers: train one for the offline profiles, or load a model's own with ``<bkspc>`` added.

Paper profile: the model's own tokenizer plus ``<bkspc>`` (:func:`load_tokenizer`). Offline profiles: a
tokenizer trained here with ``tokenizers`` (:func:`train_tokenizer`: byte-level BPE, digits split one
by one as Llama does, specials ``<pad> <bos> <eos> <bkspc>``) on the ``prompt + completion`` of
JSONL corpora (:func:`corpus_texts`), saved as a Hugging Face tokenizer directory.

Byte-level BPE always holds the 256 byte tokens plus the 4 specials, so ``--vocab-size`` below 260
gives a 260-token, merge-free (character-level) tokenizer; about 300 already holds every merge the
arithmetic corpora have (281 tokens, prompts ~16 tokens instead of ~37).
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

from seqmatch.data.sources import (BKSPC_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, pretrained_problem,
                                   read_jsonl)


# ----------------------------------------------------------------------------------------------
# tokenizers


def corpus_texts(paths: Sequence[str | os.PathLike]) -> Iterator[str]:
    """Texts of JSONL corpora: ``prompt + completion`` of every row (the strings a trajectory holds)."""
    for p in paths:
        for row in read_jsonl(p):
            yield row.get("prompt", "") + row.get("completion", "")


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, out_dir: str | os.PathLike | None = None,
                    min_frequency: int = 2):
    """Byte-level BPE with digits split individually (as Llama) and specials ``<pad> <bos> <eos>
    <bkspc>`` (ids 0-3). Encoding adds no specials; decoding round-trips any text exactly. Saved with
    ``save_pretrained`` if ``out_dir`` is given. Returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, additional_special_tokens=[BKSPC_TOKEN],
                                   clean_up_tokenization_spaces=False)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def bos_token_id(tok) -> int | None:
    """The id every sequence starts with: the tokenizer's bos token, or, for a tokenizer without one
    (every Qwen2/2.5 tokenizer), its eos token (``seqmatch.model.ensure_special_tokens`` says why)."""
    return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


def load_tokenizer(name_or_path: str | os.PathLike, add_bkspc: bool = True):
    """A model's tokenizer (local dir or hub name) with ``<bkspc>`` added as a special token (and a
    ``<pad>`` if it has no pad token). Tokenizers written by :func:`train_tokenizer` already have all
    four specials. ``tok.convert_tokens_to_ids("<bkspc>")`` is the backspace id."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    where = f"tokenizer {str(name_or_path)!r} (config key tokenizer.name_or_path, flag --tokenizer)"
    problem = pretrained_problem(name_or_path, "tokenizer")
    if problem:  # transformers: "Repo id must be in the form ...", or an empty tokenizer
        raise ValueError(f"{where}: {problem}")
    tok = AutoTokenizer.from_pretrained(str(name_or_path))
    if not set(tok.get_vocab().values()) - set(tok.all_special_ids):
        raise ValueError(f"{where}: has no tokens besides its special tokens ({len(tok)} in all): it would "
                         f"encode every text as nothing; give the directory of the model's own tokenizer")
    if add_bkspc and BKSPC_TOKEN not in tok.get_vocab():
        # add_tokens(special_tokens=True) has the same meaning in transformers 4.x and 5.x: one id,
        # never split, not normalized, dropped by decode(skip_special_tokens=True).
        tok.add_tokens([AddedToken(BKSPC_TOKEN, special=True, normalized=False)], special_tokens=True)
    if tok.pad_token is None:
        tok.add_special_tokens({"pad_token": PAD_TOKEN})
    return tok
