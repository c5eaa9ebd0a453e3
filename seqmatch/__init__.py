"""seqmatch: SequenceMatch (Cundy & Ermon, ICLR 2024) — training causal LMs with a <bkspc> action
and an occupancy-matching (chi^2) objective. Modules, one concept each:

actions   Algorithm A: actions with <bkspc> -> single-pass inputs, position ids, masks
noise     backspace noise augmentation (§4.2)
losses    SequenceMatch objective (eq. 4), BC, MLE, unlikelihood; schedules
model     HF causal LM + <bkspc> row + logit-offset head, LoRA / QLoRA
sampling  batched KV-cache sampler with <bkspc>; contrastive search
replay    FIFO replay buffer of model rollouts
data      arithmetic / text / translation data and tokenizers
metrics   accuracy, MAUVE, n-gram entropy, diversity, perplexity, BLEU
train     the training loop (MLE, BC, SM, ULK)
"""

__version__ = "0.1.0"
