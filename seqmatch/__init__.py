"""seqmatch: SequenceMatch (Cundy & Ermon, ICLR 2024) — training causal LMs with a <bkspc> action
and an occupancy-matching (chi^2) objective.

The Python API (imported on first use, so ``import seqmatch`` stays light)::

    SequenceMatchConfig   every setting of a training run (seqmatch.config)
    SequenceMatchTrainer  model, args, train_dataset, eval_dataset, processing_class -> .train() (seqmatch.train)
    ModelConfig           how to build a model: from scratch, a path, LoRA / QLoRA (seqmatch.model)
    load_model            a saved model and its tokenizer (seqmatch.model)
    generate              text with <bkspc> applied (seqmatch.generation)
    evaluate              arithmetic_accuracy, text_metrics, bleu_score (seqmatch.evaluate)

Modules, one concept each:

actions   Algorithm A: actions with <bkspc> -> single-pass inputs, position ids, masks
noise     backspace noise augmentation (§4.2)
losses    SequenceMatch objective (eq. 4), BC, MLE, unlikelihood; schedules
model     HF causal LM + <bkspc> row + logit-offset head, LoRA / QLoRA; save / load
sampling  batched KV-cache sampler with <bkspc>; contrastive search
replay    FIFO replay buffer of model rollouts
data      arithmetic / text / translation data and tokenizers
metrics   accuracy, MAUVE, n-gram entropy, diversity, perplexity, BLEU
config    SequenceMatchConfig
train     SequenceMatchTrainer and its command line (MLE, BC, SM, ULK)
evaluate  evaluation functions per task, and their command line
"""

__version__ = "0.2.0"

_API = {
    "SequenceMatchConfig": "seqmatch.config",
    "SequenceMatchTrainer": "seqmatch.train",
    "ModelConfig": "seqmatch.model",
    "load_model": "seqmatch.model",
    "generate": "seqmatch.generation",
    "GenerationOutput": "seqmatch.generation",
}
__all__ = list(_API)


def __getattr__(name):
    if name == "evaluate":
        import importlib

        return importlib.import_module("seqmatch.evaluate")
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'seqmatch' has no attribute {name!r}")
