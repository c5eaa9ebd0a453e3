"""``python -m seqmatch.evaluate``: the evaluation commands the workflow runs, each a thin wrapper
that loads the model and the rows, calls the function of ``seqmatch.evaluate`` and writes its files
(atomically; ``seqmatch.io``). Usage and conventions: ``seqmatch.evaluate``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from seqmatch.evaluate import arithmetic, common, text, translation
from seqmatch.io import read_jsonl, to_json, write_csv, write_json, write_jsonl
from seqmatch.metrics import ANSWER_NORMALIZATIONS
from seqmatch.options import add_config_option, parse_args


def _provenance(args, rows: Sequence[dict]) -> dict:
    return {"model_dir": args.model_dir, "test_file": args.test_file,
            "source": common.data_source(rows, args.test_file)}


def _sampling(args) -> dict:
    return dict(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, batch_size=args.batch_size)


def cmd_arithmetic(args) -> dict:
    rows = read_jsonl(args.test_file)
    if args.n_eval is not None:
        rows = rows[: args.n_eval]
    model, tok = common.load(args.model_dir, args.device)
    result = arithmetic.arithmetic_accuracy(model, tok, rows, max_new_tokens=args.max_new_tokens, seed=args.seed,
                                            answer_normalization=args.answer_normalization, **_sampling(args))
    write_jsonl(args.generations, result.pop("generations"))
    result.update(_provenance(args, rows))
    write_json(args.out, result)
    return result


def cmd_text(args) -> dict:
    rows = read_jsonl(args.test_file)
    model, tok = common.load(args.model_dir, args.device)
    result = text.text_metrics(model, tok, rows, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens,
                               n_samples=args.n_samples, draws=args.draws, decoding=args.decoding,
                               contrastive_k=args.contrastive_k, penalty_alpha=args.penalty_alpha,
                               featurizer=args.featurizer, mauve_seed=args.mauve_seed,
                               ngram_reduction=args.ngram_reduction, heldout_ppl_rows=args.heldout_ppl_rows,
                               seed=args.seed, device=common.device_of(args.device), **_sampling(args))
    result.update(_provenance(args, rows))
    write_json(args.out, result)
    return result


def cmd_translation(args) -> dict:
    rows = read_jsonl(args.test_file)
    if args.n_eval is not None:
        rows = rows[: args.n_eval]
    model, tok = common.load(args.model_dir, args.device)
    result = translation.bleu_score(model, tok, rows, max_new_tokens=args.max_new_tokens, seed=args.seed,
                                    **_sampling(args))
    result.update(_provenance(args, rows))
    write_json(args.out, result)
    return result


def cmd_mistakes(args) -> list[dict]:
    rows = read_jsonl(args.test_file)[: args.n_examples]
    model, tok = common.load(args.model_dir, args.device)
    res = arithmetic.mistakes(model, tok, rows, seed=args.seed, max_new_tokens=args.max_new_tokens, **_sampling(args))
    write_csv(args.out, res["table"], arithmetic.TABLE1_COLUMNS)
    if args.summary:
        write_json(args.summary, {**res["summary"], **_provenance(args, rows)})
    return res["table"]


def cmd_text_mistakes(args) -> list[dict]:
    rows = read_jsonl(args.test_file)
    model, tok = common.load(args.model_dir, args.device)
    table = text.text_mistakes(model, tok, rows, n_examples=args.n_examples, prompt_tokens=args.prompt_tokens,
                               new_tokens=args.new_tokens, seed=args.seed, **_sampling(args))
    write_csv(args.out, table, text.TABLE8_COLUMNS)
    return table


# ---------------------------------------------------------------------------------------------
# CLI


def _add_model(p: argparse.ArgumentParser, *, out_help: str) -> None:
    p.add_argument("--model-dir", required=True, help="directory written by seqmatch.model.save_model")
    p.add_argument("--test-file", required=True, help="held-out JSONL rows (seqmatch.data)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    add_config_option(p)


def _add_sampling(p: argparse.ArgumentParser, max_new_tokens: int | None) -> None:
    p.add_argument("--temperature", type=float, default=1.0, help="paper: 1 (App. E); 0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="paper: 1")
    p.add_argument("--top-k", type=int, default=0, help="paper: none (0)")
    if max_new_tokens is not None:
        p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                       help="actions generated at most (<bkspc> counts)")


def build_parser() -> argparse.ArgumentParser:
    from seqmatch import evaluate

    ap = argparse.ArgumentParser(prog="python -m seqmatch.evaluate", description=evaluate.__doc__.split("\n")[0])
    add_config_option(ap)  # also accepted before the subcommand
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("arithmetic", help="accuracy on arithmetic test questions (Fig. 3, Tables 6-7)")
    _add_model(p, out_help="metrics JSON")
    p.add_argument("--generations", required=True, help="per-row JSONL: actions, final text, correct")
    p.add_argument("--n-eval", "--n", dest="n_eval", type=int, default=None, help="first N test rows (default all)")
    p.add_argument("--answer-normalization", choices=ANSWER_NORMALIZATIONS, default="numeric",
                   help="numeric: delete every space of both answers (numbers); strip: leading and trailing "
                        "spaces; exact: as written (seqmatch.metrics.extract_answer)")
    _add_sampling(p, 64)

    p = sub.add_parser("text", help="MAUVE, n-gram entropy, diversity, perplexity (Table 2)")
    _add_model(p, out_help="metrics JSON")
    p.add_argument("--decoding", choices=["sample", "contrastive"], default="sample")
    p.add_argument("--contrastive-k", "--k", dest="contrastive_k", type=int, default=5, help="contrastive search: candidates")
    p.add_argument("--penalty-alpha", type=float, default=0.6, help="contrastive search: degeneration penalty")
    p.add_argument("--prompt-tokens", type=int, default=256, help="paper 256")
    p.add_argument("--new-tokens", type=int, default=256, help="paper 256")
    p.add_argument("--n-samples", type=int, default=1000, help="per draw; paper 1,000")
    p.add_argument("--draws", type=int, default=2, help="paper 2")
    p.add_argument("--featurizer", default="minilm", help="minilm (packaged, offline), gpt2-large or a local path")
    p.add_argument("--mauve-seed", type=int, default=25, help="MAUVE's k-means seed (mauve-text's default)")
    p.add_argument("--ngram-reduction", choices=["per_generation", "pooled"], default="per_generation")
    p.add_argument("--heldout-ppl-rows", type=int, default=200, help="clean held-out rows for perplexity (0: skip)")
    _add_sampling(p, None)

    p = sub.add_parser("translation", help="sacrebleu BLEU on en->fr (Table 5)")
    _add_model(p, out_help="metrics JSON")
    p.add_argument("--n-eval", "--n", dest="n_eval", type=int, default=None, help="first N test rows (default all)")
    _add_sampling(p, 96)

    p = sub.add_parser("mistakes", help="Table 1: completions of prompts with a wrong solution start")
    _add_model(p, out_help="CSV")
    p.add_argument("--n-examples", "--n", dest="n_examples", type=int, default=4, help="first N test questions (paper 4)")
    p.add_argument("--summary", default=None,
                   help="also write a JSON: shares of final_state_correct and first_action_bkspc")
    _add_sampling(p, 64)

    p = sub.add_parser("text-mistakes", help="Table 8: completions of prompts whose last token is random")
    _add_model(p, out_help="CSV")
    p.add_argument("--n-examples", "--n", dest="n_examples", type=int, default=3, help="first N held-out texts")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=32)
    _add_sampling(p, None)
    return ap


COMMANDS = {
    "arithmetic": cmd_arithmetic,
    "text": cmd_text,
    "translation": cmd_translation,
    "mistakes": cmd_mistakes,
    "text-mistakes": cmd_text_mistakes,
}


def main(argv: Sequence[str] | None = None):
    args = parse_args(build_parser(), argv)
    t0 = time.perf_counter()
    res = COMMANDS[args.command](args)
    summary = {k: v for k, v in res.items() if not isinstance(v, (list, dict))} if isinstance(res, dict) else \
        {"rows": len(res)}
    print(to_json(summary, ensure_ascii=True), file=sys.stderr)
    print(f"seqmatch.evaluate {args.command}: {time.perf_counter() - t0:.1f}s -> {args.out}", file=sys.stderr)
    return res

