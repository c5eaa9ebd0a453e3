"""Data for every experiment: arithmetic, text, en->fr translation, and tokenizers (issue 5).

CLI (every option has ``--help``)::

    python -m seqmatch.data arithmetic  --out-dir DIR --task {add_or_sub_in_base,mul,list_prime_factors}
                                        [--source {generator,hub}] [--n-train N] [--n-test N] [--seed S]
                                        [--difficulty D] [--entropy MIN MAX] [--max-base 10]
    python -m seqmatch.data qa          --out-dir DIR --task NAME --source hub --hub-id YOUR_FILE_OR_DIR
                                        [--base B] [--source-name NAME] [--license LICENSE] ...
    python -m seqmatch.data text        --out-dir DIR --source {wiki-sample,hub} [--hub-id ID] ...
    python -m seqmatch.data translation --out-dir DIR --source {gettext,hub} [--hub-id ID --hub-config en-fr]
                                        [--max-tokens 64] [--tokenizer DIR] ...
    python -m seqmatch.data tokenizer   --corpus A.jsonl [B.jsonl ...] --vocab-size N --out-dir DIR
    python -m seqmatch.data arithmetic  --config FILE   # option values from a JSON/YAML file

``--config FILE`` holds option values under their names with ``_`` (those of config.yaml's
``tasks.<task>.data``; ``seqmatch.options``); flags given as well override it.

Each data command writes ``DIR/train.jsonl``, ``DIR/val.jsonl`` (``--n-val`` rows carved from
the training rows; empty by default), ``DIR/test.jsonl`` and ``DIR/meta.json``
(:func:`seqmatch.data.sources.write_split`); ``tokenizer`` writes a Hugging Face tokenizer directory
with a ``meta.json``. ``python -m seqmatch.data`` runs :func:`main` (``__main__.py``).
(The first paragraph above is the parser's description.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from seqmatch.data.arithmetic import ARITHMETIC_TASKS, generate_arithmetic, load_hub_arithmetic
from seqmatch.data.sources import (
    DEFAULT_CACHE_DIR,
    SPECIAL_TOKENS,
    DataSourceError,
    looks_local,
    own_provenance,
    sha256_file,
    write_json,
    carve_validation,
    write_split,
)
from seqmatch.data.text import build_text
from seqmatch.options import add_config_option, parse_args
from seqmatch.data.tokenizer import corpus_texts, load_tokenizer, train_tokenizer
from seqmatch.data.translation import build_translation


# ----------------------------------------------------------------------------------------------
# CLI


def _add_common(p: argparse.ArgumentParser, *, n_train_help: str, n_test_help: str) -> None:
    p.add_argument("--out-dir", required=True, help="directory for train.jsonl, val.jsonl, test.jsonl, meta.json")
    p.add_argument("--n-train", type=int, default=None, help=n_train_help)
    p.add_argument("--n-test", type=int, default=None, help=n_test_help)
    p.add_argument("--n-val", type=int, default=0,
                   help="validation rows carved from the training rows into val.jsonl (for tuning; the runs "
                        "train on the rest)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files; default 0)")
    p.add_argument("--if-fewer-rows", choices=("error", "warn"), default="error",
                   help="fewer rows than --n-train/--n-test given: stop with an error, or warn and go on")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                   help="download/wheel cache (default: resources/ under the current directory)")
    p.add_argument("--source-name", default=None,
                   help="your data set's name: meta.json's source, the loader's kept as origin (default: the loader's)")
    p.add_argument("--license", default=None, help="your data's license, for meta.json (default: the loader's)")
    add_config_option(p)


def _add_hub(p: argparse.ArgumentParser, hub_id: str, hub_config: str | None, config_help: str = "") -> None:
    p.add_argument("--hub-id", default=hub_id,
                   help=f"datasets hub id, or a local file/dir in its column layout (default {hub_id})")
    p.add_argument("--hub-config", default=hub_config,
                   help=f"hub dataset config (default {config_help or hub_config})")
    p.add_argument("--hub-revision", default=None, help="hub dataset revision (default: main)")
    p.add_argument("--no-streaming", action="store_true",
                   help="download the whole hub dataset instead of streaming it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seqmatch.data", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_option(parser)  # also accepted before the subcommand
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("arithmetic", aliases=["qa"],
                       help="question/answer rows: '{question} Solution: {answer}' (mathematics_dataset, or yours)")
    _add_common(p, n_train_help="training questions (default 5000; list_prime_factors 50000, as the paper)",
                n_test_help="test questions (default 200)")
    p.add_argument("--task", required=True,
                   help=f"the task: a mathematics_dataset module ({', '.join(sorted(ARITHMETIC_TASKS))}), or the "
                        f"name of your own qa task (--source hub)")
    p.add_argument("--source", choices=("generator", "hub"), default="generator",
                   help="generator: mathematics_dataset 1.0.1 (offline; the arithmetic tasks); hub: math_dataset "
                        "through datasets, or your file/directory as --hub-id")
    p.add_argument("--base", type=int, default=None,
                   help="your own task: the base of its answers' digits (ground-truth noise); default none")
    p.add_argument("--difficulty", type=float, default=None,
                   help="fraction d in [0,1] of the module's training entropy range (3,10) to use: "
                        "entropy (3, 3+7d); default 1 = the full range (the paper's data)")
    p.add_argument("--entropy", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                   help="entropy range passed to the module function (overrides --difficulty); about the "
                        "number of decimal digits shared by the operands, e.g. '2 4' for small numbers a "
                        "CPU model learns")
    p.add_argument("--max-base", type=int, default=10, help="drop add_or_sub_in_base questions above this base")
    _add_hub(p, "deepmind/math_dataset", None, "arithmetic__<task>, numbers__list_prime_factors")

    p = sub.add_parser("text", help="text paragraphs/documents (prompt='', completion=text)")
    _add_common(p, n_train_help="training rows (default: all for wiki-sample, 200000 for hub)",
                n_test_help="held-out rows (default 500 for wiki-sample, 2000 for hub)")
    p.add_argument("--source", choices=("wiki-sample", "hub"), required=True,
                   help="wiki-sample: Wikipedia sample in the gensim 4.4.0 wheel (offline); hub: openwebtext")
    p.add_argument("--wheel", default=None, help="use this gensim wheel file instead of fetching the pinned one")
    p.add_argument("--min-words", type=int, default=20, help="wiki-sample: drop paragraphs with fewer words")
    p.add_argument("--max-chars", type=int, default=None, help="drop rows longer than this many characters")
    _add_hub(p, "Skylion007/openwebtext", None, "none")
    p.add_argument("--task", default="text", help="the task's name in the config (tasks.<task>; messages)")

    p = sub.add_parser("translation", help="en->fr pairs: prompt 'English: {en}\\nFrench:', completion ' {fr}'")
    _add_common(p, n_train_help="training pairs (default: all that pass the filters)",
                n_test_help="test pairs (default 300 for gettext, 1000 for hub)")
    p.add_argument("--source", choices=("gettext", "hub"), required=True,
                   help="gettext: French catalogs in pinned wheels (offline); hub: opus_books en-fr")
    p.add_argument("--max-tokens", type=int, default=64, help="keep pairs with both sides under this many tokens")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer dir/name for the length filter (default: estimate max(words, ceil(chars/3)))")
    p.add_argument("--min-words", type=int, default=2, help="gettext: minimum English words per entry")
    _add_hub(p, "Helsinki-NLP/opus_books", "en-fr")
    p.add_argument("--task", default="translation", help="the task's name in the config (tasks.<task>; messages)")

    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer with <pad> <bos> <eos> <bkspc>")
    p.add_argument("--corpus", nargs="+", required=True, help="JSONL files; prompt+completion of each row")
    p.add_argument("--vocab-size", type=int, required=True, help="vocabulary size including the specials")
    p.add_argument("--min-frequency", type=int, default=2, help="minimum pair frequency for a merge")
    p.add_argument("--out-dir", required=True, help="Hugging Face tokenizer directory to write")
    add_config_option(p)

    return parser


def _check_local_path(args, task: str) -> None:
    """A local data path with a typo: named with its config key before anything is read (else
    it would be looked up as a hub dataset)."""
    if getattr(args, "source", None) == "hub" and looks_local(args.hub_id) and not Path(args.hub_id).exists():
        raise DataSourceError(
            f"config key tasks.{task}.data.hub_id (flag --hub-id) = {args.hub_id!r}: no such file or directory "
            f"(relative paths are from {Path.cwd()}); give the path of your data file or directory")


def _check_sizes(args, task: str, train: Sequence[dict], test: Sequence[dict]) -> None:
    """Fewer rows than n_train / n_test asked for: an error, or with --if-fewer-rows warn a
    warning, never a silently smaller data set."""
    for split, n, got in (("train", args.n_train, len(train)), ("test", args.n_test, len(test))):
        if n is None or got >= n:
            continue
        msg = (f"config key tasks.{task}.data.n_{split} (flag --n-{split}) = {n}, but the data have only {got} "
               f"usable {split} rows (after de-duplication and filters)")
        if args.if_fewer_rows == "warn":
            print(f"warning: {msg}; going on with {got} (if_fewer_rows: warn)", file=sys.stderr)
        else:
            raise DataSourceError(f"{msg}; lower n_{split}, add rows, or set tasks.{task}.data.if_fewer_rows: "
                                  f"warn to go on with {got}")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(build_parser(), argv)
    t0 = time.perf_counter()
    streaming = False if getattr(args, "no_streaming", False) else None
    task = getattr(args, "task", args.cmd)
    _check_local_path(args, task)
    if args.cmd in ("arithmetic", "qa"):
        n_train = args.n_train if args.n_train is not None else (
            50_000 if args.task == "list_prime_factors" else 5_000)
        n_test = 200 if args.n_test is None else args.n_test
        if args.source == "generator" and args.task not in ARITHMETIC_TASKS:
            raise DataSourceError(
                f"config key tasks.{task}.data.source (flag --source) = 'generator': the generator makes only "
                f"{', '.join(ARITHMETIC_TASKS)}; give your rows with source hub and hub_id (--hub-id) your file")
        if args.source == "generator":
            train, test, meta = generate_arithmetic(args.task, n_train=n_train, n_test=n_test, seed=args.seed,
                                                    difficulty=args.difficulty, entropy=args.entropy,
                                                    max_base=args.max_base)
        else:
            train, test, meta = load_hub_arithmetic(args.task, hub_id=args.hub_id, config=args.hub_config,
                                                    n_train=n_train, n_test=n_test, seed=args.seed,
                                                    max_base=args.max_base, revision=args.hub_revision,
                                                    streaming=streaming, base=args.base)
    elif args.cmd == "text":
        n_test = args.n_test if args.n_test is not None else (500 if args.source == "wiki-sample" else 2000)
        train, test, meta = build_text(args.source, n_train=args.n_train, n_test=n_test, seed=args.seed,
                                       cache_dir=args.cache_dir, wheel_path=args.wheel, hub_id=args.hub_id,
                                       hub_config=args.hub_config, revision=args.hub_revision,
                                       streaming=streaming, min_words=args.min_words, max_chars=args.max_chars,
                                       task=task)
    elif args.cmd == "translation":
        n_test = args.n_test if args.n_test is not None else (300 if args.source == "gettext" else 1000)
        tok = load_tokenizer(args.tokenizer, add_bkspc=False) if args.tokenizer else None
        train, test, meta = build_translation(args.source, n_train=args.n_train, n_test=n_test, seed=args.seed,
                                              max_tokens=args.max_tokens, tokenizer=tok, cache_dir=args.cache_dir,
                                              min_words=args.min_words, hub_id=args.hub_id,
                                              hub_config=args.hub_config, revision=args.hub_revision,
                                              streaming=streaming, task=task)
        if args.tokenizer:
            meta["settings"]["length"] = f"tokenizer {Path(args.tokenizer).name}"
    elif args.cmd == "tokenizer":
        tok = train_tokenizer(corpus_texts(args.corpus), vocab_size=args.vocab_size, out_dir=args.out_dir,
                              min_frequency=args.min_frequency)
        meta = {"kind": "tokenizer", "algorithm": "byte-level BPE (tokenizers), digits split individually",
                "vocab_size": len(tok), "requested_vocab_size": args.vocab_size,
                "special_tokens": {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS},
                "inputs": [{"name": Path(c).name, "sha256": sha256_file(c)} for c in args.corpus]}
        write_json(Path(args.out_dir) / "meta.json", meta)
        print(json.dumps({"out_dir": args.out_dir, "vocab_size": len(tok)}))
        return meta
    else:  # pragma: no cover - argparse enforces the choices
        raise ValueError(args.cmd)
    _check_sizes(args, task, train, test)
    if args.n_val and args.n_val >= len(train):
        raise DataSourceError(f"config key tasks.{task}.data.n_val (flag --n-val) = {args.n_val}: not fewer than "
                              f"the {len(train)} training rows it is carved from; lower n_val or raise n_train")
    train, val = carve_validation(train, args.n_val, args.seed)
    own_provenance((train, val, test), meta, source_name=args.source_name, license=args.license)
    meta["command"] = args.cmd
    if val:
        meta["validation"] = f"{len(val)} rows carved from the {len(train) + len(val)} training rows (seeded)"
    meta = write_split(args.out_dir, train, test, meta, val=val)
    print(json.dumps({"out_dir": args.out_dir, "sizes": meta["sizes"], "source": meta["source"],
                      "seconds": round(time.perf_counter() - t0, 2)}), file=sys.stderr)
    return meta
