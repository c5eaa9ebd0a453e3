"""Evaluation: sample from a trained model (with ``<bkspc>``) and compute the paper's metrics.

As functions, on a model and a tokenizer (``seqmatch.load_model``) and rows (dicts)::

    from seqmatch.evaluate import arithmetic_accuracy, text_metrics, bleu_score
    arithmetic_accuracy(model, tokenizer, rows)["accuracy"]      # question/answer tasks
    text_metrics(model, tokenizer, rows)["mauve_mean"]            # MAUVE, n-gram entropy, diversity, perplexity
    bleu_score(model, tokenizer, rows)["bleu"]                    # en -> fr

One module per task: ``arithmetic`` (accuracy, Table 1's mistakes), ``text`` (Table 2, Table 8),
``translation`` (Table 5); ``common`` (tokens, sampling), ``cli`` (the commands below, thin around
the functions).

Commands (the Snakemake rules of ``workflow/rules/evaluate.smk`` call them)::

    python -m seqmatch.evaluate arithmetic --model-dir DIR --test-file F --out OUT.json \
        --generations GEN.jsonl [--n-eval N --max-new-tokens 64 --seed S --batch-size B --temperature 1.0]
    python -m seqmatch.evaluate text --model-dir DIR --test-file F --out OUT.json \
        [--decoding sample|contrastive --contrastive-k 5 --penalty-alpha 0.6] --prompt-tokens P --new-tokens G \
        --n-samples N --draws 2 --featurizer minilm|gpt2-large|PATH --seed S [--heldout-ppl-rows N]
    python -m seqmatch.evaluate translation --model-dir DIR --test-file F --out OUT.json [--n-eval N]
    python -m seqmatch.evaluate mistakes --model-dir DIR --test-file F --out OUT.csv --n-examples 4 \
        --seed S [--summary OUT.json]
    python -m seqmatch.evaluate text-mistakes --model-dir DIR --test-file F --out OUT.csv --n-examples 3 \
        --prompt-tokens P --new-tokens G
    python -m seqmatch.evaluate arithmetic --config FILE    # any option's value from a JSON/YAML file

``--config FILE`` holds option values under their names with ``_`` (those of config.yaml's
``tasks.<task>.eval``; ``seqmatch.options``); flags given as well override it. The workflow writes one
per job.

Conventions shared by every subcommand:

* Prompts are ``tok.encode(text, add_special_tokens=False)``; the sampler adds ``<bos>``. A row's
  training trajectory was ``tok(prompt) + tok(completion) + [eos]`` (docs/contracts.md), so the
  model sees evaluation prompts exactly as it saw training prompts.
* **Sampling** (``seqmatch.sampling.generate``): temperature 1, top-p 1, no top-k by default, the
  paper's generation settings (App. E: "we set the temperature to 1 and the top-p sampling to 1,
  with no top-k sampling"); ``--temperature 0`` is greedy. The seed fixes a ``torch.Generator``.
* **Final state**: the sampler's ``states`` (prompt included, backspaces applied, no ``<bos>``, no
  final ``<eos>``). The model may backspace into the prompt; the *continuation* is what follows the
  longest common prefix of the final state and the prompt (``continuation``).
* **Actions shown** (generations files, Tables 1 and 8): runs of ordinary tokens decoded with the
  tokenizer, ``<bkspc>`` and ``<eos>`` written out (``decode_actions``).
* Every output is written atomically (temporary file in the same directory, then ``os.replace``).

Per subcommand:

* ``arithmetic``: accuracy = ``seqmatch.metrics.arithmetic_accuracy`` on the decoded final states
  (exact match after the last ``Solution:``). ``bkspc_rate`` = fraction of generated actions that
  are ``<bkspc>``; ``seq_bkspc_frac`` = fraction of generations with at least one.
* ``text`` (Table 2): prompts are the first P tokens of held-out texts with at least P + G tokens;
  the reference of a prompt is the true next G tokens of the same text. Each draw d samples
  ``n_samples`` texts without replacement with ``numpy.random.default_rng([seed, d])`` and samples
  generations with torch seed ``seed * 1000 + d``. MAUVE compares generations (continuations)
  with references **of the same token length, pair by pair**: reference i is cut to the number of
  tokens of generation i (a generation is shorter than G when it stopped at ``<eos>`` or used
  ``<bkspc>``, which spends actions without adding tokens), so length alone cannot separate the
  two sets. Features: ``seqmatch.metrics.featurize`` (``max_tokens = G``), score
  ``seqmatch.metrics.mauve_score``. n-gram entropy (``n = 4``) and diversity on the whitespace
  words of the continuations; the entropy is averaged per generation by default (the magnitude of
  the paper's Table 2, ~4.6 nats; ``--ngram-reduction pooled`` for the pooled one, which is also
  reported). Mean and sd over draws with ``seqmatch.metrics.mean_sd`` (sample sd). Perplexity on the
  first ``--heldout-ppl-rows`` clean held-out rows (``seqmatch.metrics.perplexity``, softmax over the
  full output vocabulary incl. ``<bkspc>``), trajectories cut to the model's context; ``null`` for
  contrastive search (the paper reports N/A: it is a decoding method, the model is MLE's).
* ``translation`` (Table 5): prompt ``row["prompt"]``, hypothesis = decoded continuation (stripped),
  reference ``row["fr"]``; sacrebleu corpus BLEU (``seqmatch.metrics.bleu``).
* ``mistakes`` (Table 1): for the first n test questions, the prompt is ``"{question} Solution:"``
  followed by a *mistake*: the answer's leading non-digit characters (space, sign) and 1-4 random
  digits of the question's base, never a prefix of the true answer (``mistake_text``). The seed
  draws the mistakes (and seeds the sampler): one seed gives every model the same mistakes.
  ``--summary``: the share of completions whose final state is correct (``recovery_summary``:
  ``arithmetic_accuracy`` on the whole final state, as ``arithmetic``) and whose first action is
  ``<bkspc>``.
* ``text-mistakes`` (Table 8): the first n held-out texts with at least P tokens; the prompt is
  their first P tokens with the last one replaced by a uniformly random ordinary vocabulary token
  (special tokens and the original token excluded; ``replace_last_token``).
"""


from seqmatch.evaluate.common import (common_prefix_len, continuation, data_source, decode_actions, encode,
                                      effective_max_new_tokens, ordinary_token_ids, sample)
from seqmatch.evaluate.arithmetic import (TABLE1_COLUMNS, arithmetic_accuracy, mistake_text, mistakes,
                                          recovery_summary)
from seqmatch.evaluate.text import (TABLE8_COLUMNS, draw_indices, heldout_perplexity, replace_last_token,
                                    text_metrics, text_mistakes, text_pool, truncate_references)
from seqmatch.evaluate.translation import bleu_score
from seqmatch.evaluate.cli import build_parser, main

__all__ = ["arithmetic_accuracy", "mistakes", "recovery_summary", "mistake_text", "text_metrics", "text_mistakes",
           "heldout_perplexity", "bleu_score", "text_pool", "draw_indices", "truncate_references", "replace_last_token",
           "continuation", "common_prefix_len", "decode_actions", "encode", "ordinary_token_ids", "data_source",
           "effective_max_new_tokens", "sample", "TABLE1_COLUMNS", "TABLE8_COLUMNS", "build_parser", "main"]
