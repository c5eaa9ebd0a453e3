"""Data for every experiment: arithmetic, text, en->fr translation, and tokenizers (issue 5).

What lives where (every public name is re-exported here, so ``from seqmatch.data import X`` works):

* :mod:`seqmatch.data.sources` -- shared by every family: special tokens, errors
  (:class:`DataSourceError`, :class:`HubUnavailableError`, :class:`ChecksumError`), hashing, JSONL/JSON
  and ``train/test/meta.json`` writing, pinned wheels, ``datasets`` hub loading and offline checks.
* :mod:`seqmatch.data.arithmetic` -- mathematics_dataset questions (generator or ``math_dataset`` hub).
* :mod:`seqmatch.data.text` -- Wikipedia sample in the gensim wheel, or openwebtext.
* :mod:`seqmatch.data.translation` -- en->fr pairs from gettext catalogs in pinned wheels, or opus_books.
* :mod:`seqmatch.data.tokenizer` -- :func:`train_tokenizer`, :func:`load_tokenizer`, :func:`corpus_texts`.
* :mod:`seqmatch.data.cli` -- the command line, ``python -m seqmatch.data {arithmetic,text,translation,
  tokenizer} --help`` (:func:`build_parser`, :func:`main`; run by ``__main__.py``).

Each data command writes ``DIR/train.jsonl``, ``DIR/test.jsonl`` and ``DIR/meta.json``; every row has
``prompt``, ``completion`` and ``source`` (see :mod:`seqmatch.data.sources`).
"""

from seqmatch.data.sources import (
    BKSPC_TOKEN,
    BOS_TOKEN,
    DEFAULT_CACHE_DIR,
    EOS_TOKEN,
    OFFLINE_HINT,
    PAD_TOKEN,
    PARQUET_REVISION,
    SPECIAL_TOKENS,
    ChecksumError,
    DataSourceError,
    HubUnavailableError,
    PinnedWheel,
    WheelMember,
    fetch_wheel,
    load_hub_dataset,
    read_jsonl,
    read_wheel_member,
    sha256_bytes,
    sha256_file,
    write_json,
    write_jsonl,
    write_split,
)
from seqmatch.data.arithmetic import (
    ARITHMETIC_TASKS,
    MATH_DATASET_LICENSE,
    MATH_DATASET_VERSION,
    MAX_ANSWER_CHARS,
    MAX_QUESTION_CHARS,
    SOLUTION_MARKER,
    arithmetic_row,
    ensure_mathematics_dataset,
    generate_arithmetic,
    load_hub_arithmetic,
    question_base,
    resolve_entropy,
)
from seqmatch.data.text import (
    GENSIM_WHEEL,
    WIKI_LICENSE,
    WIKI_MEMBER,
    build_text,
    iter_wiki_pages,
    split_by_group,
    strip_wiki_markup,
    wiki_sample_paragraphs,
)
from seqmatch.data.translation import (
    GETTEXT_SOURCES,
    CatalogEntry,
    CatalogSource,
    build_translation,
    catalog_pairs,
    estimate_tokens,
    gettext_pairs,
    is_natural_language,
    parse_mo,
    parse_po,
    translation_row,
)
from seqmatch.data.tokenizer import bos_token_id, corpus_texts, load_tokenizer, train_tokenizer
from seqmatch.data.cli import build_parser, main

__all__ = [
    # sources
    "BKSPC_TOKEN", "BOS_TOKEN", "EOS_TOKEN", "PAD_TOKEN", "SPECIAL_TOKENS", "DEFAULT_CACHE_DIR",
    "DataSourceError", "HubUnavailableError", "ChecksumError", "sha256_bytes", "sha256_file", "read_jsonl",
    "write_jsonl", "write_json", "write_split", "PinnedWheel", "WheelMember", "fetch_wheel",
    "read_wheel_member", "OFFLINE_HINT", "PARQUET_REVISION", "load_hub_dataset",
    # arithmetic
    "SOLUTION_MARKER", "ARITHMETIC_TASKS", "MATH_DATASET_VERSION", "MATH_DATASET_LICENSE",
    "MAX_QUESTION_CHARS", "MAX_ANSWER_CHARS", "ensure_mathematics_dataset", "resolve_entropy",
    "question_base", "arithmetic_row", "generate_arithmetic", "load_hub_arithmetic",
    # text
    "GENSIM_WHEEL", "WIKI_MEMBER", "WIKI_LICENSE", "strip_wiki_markup", "iter_wiki_pages",
    "wiki_sample_paragraphs", "split_by_group", "build_text",
    # translation
    "CatalogEntry", "parse_po", "parse_mo", "is_natural_language", "catalog_pairs", "CatalogSource",
    "GETTEXT_SOURCES", "translation_row", "gettext_pairs", "estimate_tokens", "build_translation",
    # tokenizer
    "corpus_texts", "train_tokenizer", "load_tokenizer", "bos_token_id",
    # cli
    "build_parser", "main",
]
