"""The policy: a Hugging Face causal LM with a ``<bkspc>`` row and a logit-offset head (App. E).

``build_model(cfg, tokenizer)`` loads any causal LM by hub id or local directory (or builds a small
Llama / GPT-2 from scratch), adds ``<bkspc>`` to the tokenizer and resizes the embedding and
unembedding so the new token has its own, trained, rows. A pretrained model must come with its own
tokenizer (every token at the model's id; ``check_own_tokenizer``) unless ``new_tokenizer`` says
otherwise; the rows of the tokens added to it start at the mean of the model's rows
(``init_added_rows``); a tokenizer without a bos token starts sequences with its eos
(``ensure_special_tokens``). Optional pieces, all from ``ModelConfig``:

* LoRA through ``peft`` (paper: r = 64, alpha = 16). The base weights are frozen; the ``<bkspc>``
  rows of the input embedding and of the unembedding stay trainable through peft's
  ``trainable_token_indices`` (tied embeddings such as GPT-2's are handled by peft: one row, two
  uses). The offset head is always trainable. Note that Algorithm A never feeds ``<bkspc>`` as
  an *input* (a backspace is followed by a copy of the token now last), so the input-embedding
  row of an untied model gets no gradient; the unembedding row (the ``<bkspc>`` logit) does.
* 4-bit QLoRA through ``bitsandbytes`` (NF4, double quantization, bf16 compute on GPU, fp32 on CPU).
* Gradient checkpointing (non-reentrant), attention implementation ``sdpa`` by default.

**Logit-offset head.** A two-layer MLP (hidden size 8, GELU) whose inputs are the position id (as
a float feature, divided by the model's maximum number of positions) and the last-layer hidden
state at that position. Its output is a *scalar per position*, added to every logit of that
position. A scalar offset leaves the policy softmax(logits) unchanged but moves
V(s) = logsumexp(logits), which is what the SequenceMatch objective is sensitive to: the head
lets the model fit the soft value of a state (e.g. how far the state is from the end, via the
position) without distorting the next-token distribution. (The paper says only "the output of
the layer is added directly to the logits"; we read "offset" as a per-state shift.) Consequence:
plain cross-entropy gives the head exactly zero gradient; the SM loss does not.

**Masks.** ``SeqMatchLM.forward`` requires the 4-D mask of ``seqmatch.actions.collate`` (or the
sampler's incremental one): [B, 1, Q, K], bool (True = attend) or additive float. Transformers
5.x uses a 4-D mask as given, without checks; we normalise it for the attention implementation
(bool -> additive ``finfo.min`` under ``eager``, where a bool mask would silently be *added* to the
scores). A 2-D mask or no mask is refused: position ids that restart (Algorithm A) with no mask
and no cache trigger transformers' packed-sequence detection and give wrong logits.

**Save / load.** ``save_model`` writes safetensors only (full weights, or the LoRA adapter with
the ``<bkspc>`` rows, plus the offset head), the tokenizer (JSON), a model card and
``seqmatch_model.json``, all in one directory that ``AutoModelForCausalLM.from_pretrained`` loads as
it is (without the offset head, which does not change the policy). ``load_model`` never unpickles.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .actions import BKSPC_TOKEN
from .io import atomic_write_text
from .options import config_field as _field

FORMAT_VERSION = 2  # 1: weights in hf/ or adapter/, tokenizer in tokenizer/
CONFIG_FILE = "seqmatch_model.json"
HEAD_FILE = "offset_head.safetensors"

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class ModelConfig:
    """How to build the policy. Every field is plain data (saved as JSON next to the weights)."""

    name_or_path: str | None = _field(
        None, "hub id (e.g. meta-llama/Llama-2-7b-hf) or local directory of a causal LM; None builds a "
        "model from scratch from arch and the size fields")
    arch: str = _field("llama", "architecture of a from-scratch model: llama | gpt2")
    n_layer: int = _field(2, "from-scratch model: layers")
    n_head: int = _field(4, "from-scratch model: attention heads")
    d_model: int = _field(64, "from-scratch model: hidden width")
    d_ff: int = _field(256, "from-scratch model: MLP width")
    max_position_embeddings: int = _field(1024, "from-scratch model: context length (number of position ids)")
    attn_implementation: str = _field(
        "sdpa", "sdpa | eager; flash_attention_2 / flex_attention are passed through for GPU users "
        "(flex crashes on CPU with custom masks)")
    lora_r: int = _field(0, "LoRA rank; 0 = full fine-tune (every weight trainable)")
    lora_alpha: int = _field(16, "LoRA scaling alpha (paper: 16 with r = 64)")
    lora_dropout: float = _field(0.0, "dropout on the LoRA branch")
    lora_target_modules: list[str] | str = _field(
        "all-linear", "module names for LoRA, or all-linear (every linear layer except the output head, "
        "the QLoRA convention)")
    load_in_4bit: bool = _field(
        False, "QLoRA: load the base weights in 4-bit NF4 through bitsandbytes (needs name_or_path and lora_r > 0)")
    gradient_checkpointing: bool = _field(False, "recompute activations in the backward pass (non-reentrant)")
    offset_head: bool = _field(True, "add the logit-offset head (App. E)")
    offset_head_hidden: int = _field(8, "hidden width of the offset head (paper: 8)")
    torch_dtype: str = _field("float32", "weight dtype: float32 | bfloat16 | float16")
    trust_remote_code: bool = _field(False, "allow hub repositories to run their own code; off unless set")
    new_tokenizer: bool = _field(
        False, "a pretrained model with a tokenizer that is not its own (e.g. a BPE tokenizer trained here): "
        "resize its embeddings to that tokenizer, whose ids then index pretrained rows of other tokens; false "
        "refuses such a pair (build_model compares the tokenizer with the model's own)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        return cls(**d)


@dataclass
class SeqMatchOutput:
    """``logits`` [B, T, V] float32 (offset added; V includes ``<bkspc>``), ``past_key_values``
    (the HF cache when ``use_cache``), ``hidden_states`` [B, T, d]: the last-layer hidden state that
    the output head reads (after the final norm)."""

    logits: torch.Tensor
    past_key_values: Any = None
    hidden_states: torch.Tensor | None = None


class OffsetHead(nn.Module):
    """Two-layer MLP (GELU) from [position / max_positions, hidden state] to one scalar offset."""

    def __init__(self, d_model: int, hidden: int = 8, max_positions: int = 1024):
        super().__init__()
        self.max_positions = int(max_positions)
        self.fc1 = nn.Linear(d_model + 1, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, hidden_states: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        w = self.fc1.weight
        pos = (position_ids.to(w.dtype) / self.max_positions).unsqueeze(-1)
        x = torch.cat([pos, hidden_states.to(w.dtype)], dim=-1)
        return self.fc2(self.act(self.fc1(x)))  # [B, T, 1]


class SeqMatchLM(nn.Module):
    """A causal LM (``.lm``: the HF model, or the peft model wrapping it) plus the offset head."""

    def __init__(
        self,
        lm: nn.Module,
        config: ModelConfig,
        *,
        bkspc_id: int,
        bos_id: int,
        eos_id: int,
        pad_id: int,
        max_positions: int,
    ):
        super().__init__()
        self.lm = lm
        self.config = config
        self.bkspc_id = int(bkspc_id)
        self.bos_id = int(bos_id)
        self.eos_id = int(eos_id)
        self.pad_id = int(pad_id)
        self.max_positions = int(max_positions)
        hf = self.hf_model
        if config.offset_head:
            self.offset_head = OffsetHead(hf.config.get_text_config().hidden_size, config.offset_head_hidden, max_positions)
            self.offset_head.to(hf.get_input_embeddings().weight.device)
        else:
            self.offset_head = None

    # -- views of the wrapped model ------------------------------------------------------------
    @property
    def hf_model(self) -> nn.Module:
        """The transformers model (with LoRA layers injected when peft is used)."""
        lm = self.lm
        return lm.get_base_model() if hasattr(lm, "get_base_model") else lm

    @property
    def is_peft(self) -> bool:
        return hasattr(self.lm, "peft_config")

    @property
    def attn_implementation(self) -> str:
        return self.hf_model.config._attn_implementation

    @property
    def vocab_size(self) -> int:
        return int(self.hf_model.get_input_embeddings().weight.shape[0])

    @property
    def device(self) -> torch.device:
        return self.hf_model.get_input_embeddings().weight.device

    @property
    def compute_dtype(self) -> torch.dtype:
        """dtype of the attention scores (for additive masks)."""
        hf = self.hf_model
        dt = getattr(hf, "dtype", None)
        if dt is None or not dt.is_floating_point:
            dt = hf.get_input_embeddings().weight.dtype
        return dt

    # -- masks ---------------------------------------------------------------------------------
    def prepare_attention_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Put a 4-D visibility mask into the form the attention implementation needs.

        Accepts bool (True = attend) or additive float (0 / very negative). ``eager`` gets an
        additive mask with ``finfo(compute dtype).min``; other implementations get bool.
        """
        if attention_mask is None or attention_mask.dim() != 4:
            raise ValueError(
                "SeqMatchLM needs a 4-D attention mask [B, 1, Q, K] (seqmatch.actions.collate or the "
                "sampler build it); a 2-D mask or None lets transformers guess the structure and, "
                "with restarting position ids, the guess is wrong"
            )
        impl = self.attn_implementation
        if attention_mask.dtype == torch.bool:
            vis = attention_mask
        elif impl == "eager" and attention_mask.dtype == self.compute_dtype:
            return attention_mask
        else:
            vis = attention_mask > torch.finfo(attention_mask.dtype).min / 2
        if impl == "eager":
            dt = self.compute_dtype
            out = torch.zeros(vis.shape, dtype=dt, device=vis.device)
            return out.masked_fill_(~vis, torch.finfo(dt).min)
        return vis

    # -- forward -------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> SeqMatchOutput:
        hf = self.hf_model
        mask = self.prepare_attention_mask(attention_mask)
        captured: list[torch.Tensor] = []
        head_module = hf.get_output_embeddings()
        handle = head_module.register_forward_hook(lambda mod, args, out: captured.append(args[0]))
        try:
            out = hf(
                input_ids=input_ids,
                position_ids=position_ids,
                attention_mask=mask,
                past_key_values=past_key_values,
                use_cache=use_cache,
            )
        finally:
            handle.remove()
        hidden = captured[-1]
        logits = out.logits.float()
        if self.offset_head is not None:
            dev = self.offset_head.fc1.weight.device  # the decoder may be sharded across devices
            off = self.offset_head(hidden.to(dev), position_ids.to(dev)).float()
            logits = logits + off.to(logits.device)
        return SeqMatchOutput(
            logits=logits,
            past_key_values=out.past_key_values if use_cache else None,
            hidden_states=hidden,
        )

    # -- parameter groups ----------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


# ------------------------------------------------------------------------------------------------
# building


def _dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"torch_dtype={name!r}: expected one of {sorted(_DTYPES)}") from None


def ensure_special_tokens(tokenizer) -> dict[str, int]:
    """Add ``<bkspc>`` (and a pad token if missing) to ``tokenizer``; return the four ids.

    A tokenizer without a pad token (e.g. Llama-2's) uses ``<eos>`` for padding: padded inputs are
    never visible and never labelled, so no new row is needed for them. A tokenizer without a bos
    token (every Qwen2/2.5 tokenizer) starts every sequence with its eos token instead
    (``seqmatch.data.tokenizer.bos_token_id``): the first input is then the state "a document has
    just ended", which a model pretrained on documents joined by eos knows, where an added token
    would be a row it never saw. Training and generation both take the id from the model
    (``SeqMatchLM.bos_id``, saved in ``seqmatch_model.json``), so they agree.
    """
    from seqmatch.data.tokenizer import bos_token_id

    if tokenizer.convert_tokens_to_ids(BKSPC_TOKEN) in (None, getattr(tokenizer, "unk_token_id", None)):
        tokenizer.add_special_tokens({"additional_special_tokens": [BKSPC_TOKEN]})
    bkspc_id = tokenizer.convert_tokens_to_ids(BKSPC_TOKEN)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token: seqmatch ends every sequence with it (a tokenizer "
                         "whose special tokens include an end-of-text token: set it as eos_token and save it)")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return dict(
        bkspc_id=int(bkspc_id),
        bos_id=int(bos_token_id(tokenizer)),
        eos_id=int(tokenizer.eos_token_id),
        pad_id=int(tokenizer.pad_token_id),
    )


def check_own_tokenizer(cfg: ModelConfig, tokenizer) -> list[int]:
    """The ids ``tokenizer`` adds to pretrained model ``cfg.name_or_path``'s own tokenizer (e.g.
    ``<bkspc>``, a ``<pad>``), after checking that it *is* the model's own: every token of the
    model's tokenizer must keep its id, or the pretrained embedding rows would stand for other
    tokens (ValueError, unless ``cfg.new_tokenizer``). A model without a tokenizer of its own
    cannot be compared: a warning, and only ``<bkspc>`` counts as added."""
    import sys

    from transformers import AutoTokenizer

    from seqmatch.data.sources import pretrained_problem

    name = cfg.name_or_path
    ours = tokenizer.get_vocab()
    own = None
    if pretrained_problem(name, "tokenizer") is None:
        try:
            own = AutoTokenizer.from_pretrained(name, trust_remote_code=bool(cfg.trust_remote_code)).get_vocab()
        except (OSError, ValueError) as e:  # a hub id without a tokenizer, offline without a cache, ...
            print(f"warning: cannot load model {name!r}'s own tokenizer to compare ({type(e).__name__})",
                  file=sys.stderr)
    if own is None:
        if not cfg.new_tokenizer:
            print(f"warning: model {name!r} has no tokenizer of its own to compare the tokenizer with; seqmatch "
                  f"assumes it is the model's", file=sys.stderr)
        return [ours[BKSPC_TOKEN]] if BKSPC_TOKEN in ours else []
    moved = [(t, i, ours.get(t)) for t, i in own.items() if ours.get(t) != i]
    if moved and not cfg.new_tokenizer:
        t, i, j = moved[0]
        raise ValueError(
            f"the tokenizer (config key tokenizer.name_or_path, flag --tokenizer) is not model {name!r}'s own: "
            f"{len(moved)} of its {len(own)} tokens have another id or none (e.g. {t!r}: {i} in the model's, {j} "
            f"here), so the pretrained embeddings would stand for other tokens. Use the model's own tokenizer "
            f"(leave tokenizer.name_or_path null), or set model.new_tokenizer: true (flag --new-tokenizer true) "
            f"to resize the model to this one knowingly")
    return sorted(i for t, i in ours.items() if t not in own)


def init_added_rows(hf: nn.Module, ids: list[int], n_old: int) -> None:
    """Rows of the ids a tokenizer added to a pretrained model's own that the model already had
    (padding rows, e.g. Qwen2's 151,936 against 151,665 tokens: untrained, or trained for nothing):
    set to the mean of the rows before them, in the input and the output embeddings, as
    transformers' mean resizing does for rows it adds."""
    ids = [i for i in ids if i < n_old]
    if not ids:
        return
    first = min(ids)
    with torch.no_grad():
        mats = [hf.get_input_embeddings().weight]
        out = hf.get_output_embeddings()
        if out is not None and out.weight is not mats[0]:
            mats.append(out.weight)
        for w in mats:
            w[ids] = w[:first].mean(dim=0, keepdim=True).to(w.dtype)


def bnb_config(cfg: ModelConfig, *, cuda: bool | None = None):
    """The ``BitsAndBytesConfig`` of a QLoRA model: NF4, double quantization, bf16 compute on GPU
    (float32 on CPU, where bf16 matmuls are slow or missing)."""
    from transformers import BitsAndBytesConfig

    if cuda is None:
        cuda = torch.cuda.is_available()
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32,
    )


def _from_scratch_config(cfg: ModelConfig, vocab_size: int, ids: dict[str, int]):
    from transformers import GPT2Config, LlamaConfig

    common = dict(
        vocab_size=vocab_size,
        bos_token_id=ids["bos_id"],
        eos_token_id=ids["eos_id"],
        pad_token_id=ids["pad_id"],
    )
    if cfg.arch == "llama":
        return LlamaConfig(
            hidden_size=cfg.d_model,
            intermediate_size=cfg.d_ff,
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_head,
            max_position_embeddings=cfg.max_position_embeddings,
            tie_word_embeddings=False,
            **common,
        )
    if cfg.arch == "gpt2":
        return GPT2Config(
            n_embd=cfg.d_model,
            n_inner=cfg.d_ff,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_positions=cfg.max_position_embeddings,
            **common,
        )
    raise ValueError(f"arch={cfg.arch!r}: expected 'llama' or 'gpt2'")


def _max_positions(hf_config, default: int) -> int:
    c = hf_config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(c, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return default


def _load_base(cfg: ModelConfig, device: str | torch.device | None, path: str | None = None):
    """The transformers model named by ``path`` (default ``cfg.name_or_path``); a local path
    that cannot be a model is named first (transformers: "Repo id must be in the form ...")."""
    from transformers import AutoModelForCausalLM

    from seqmatch.data.sources import pretrained_problem

    problem = pretrained_problem(path or cfg.name_or_path, "model")
    if problem:
        key = "" if path else " (config key model.name_or_path, flag --name-or-path)"
        raise ValueError(f"model {path or cfg.name_or_path!r}{key}: {problem}")

    kw: dict[str, Any] = dict(
        attn_implementation=cfg.attn_implementation,
        trust_remote_code=bool(cfg.trust_remote_code),
    )
    if cfg.load_in_4bit:
        cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
        kw["quantization_config"] = bnb_config(cfg, cuda=cuda)
        if device is None:
            device = torch.device("cuda", torch.cuda.current_device()) if cuda else "cpu"
        kw["device_map"] = {"": device}
        kw["dtype"] = torch.bfloat16 if cuda else torch.float32
    else:
        kw["dtype"] = _dtype(cfg.torch_dtype)
    return AutoModelForCausalLM.from_pretrained(path or cfg.name_or_path, **kw)


def _module_name(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("module not found in model")


def _target_modules(spec: list[str] | str) -> list[str] | str:
    """``"all-linear"``, ``["all-linear"]``, ``"q_proj,v_proj"`` or a list of names."""
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    spec = list(spec)
    if spec == ["all-linear"]:
        return "all-linear"
    if not spec:
        raise ValueError("lora_target_modules is empty")
    return spec


def _lora_config(cfg: ModelConfig, hf: nn.Module, bkspc_id: int):
    from peft import LoraConfig

    emb = _module_name(hf, hf.get_input_embeddings()).split(".")[-1]
    out = _module_name(hf, hf.get_output_embeddings()).split(".")[-1]
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=_target_modules(cfg.lora_target_modules),
        task_type="CAUSAL_LM",
        # the <bkspc> rows of the embedding and the unembedding are trained (peft ties them when
        # the model ties its embeddings)
        trainable_token_indices={emb: [bkspc_id], out: [bkspc_id]},
    )


def _finish(hf: nn.Module, cfg: ModelConfig) -> None:
    if cfg.gradient_checkpointing:
        kw = {"use_reentrant": False}
        if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.x name
            hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        hf.config.use_cache = False


def build_model(cfg: ModelConfig, tokenizer, *, device: str | torch.device | None = None,
                base: nn.Module | None = None) -> SeqMatchLM:
    """Build the policy for ``cfg``; adds ``<bkspc>`` to ``tokenizer`` (in place) when missing.
    ``base``: a transformers causal LM object to wrap instead of loading ``cfg.name_or_path`` (it is
    resized in place and, with ``lora_r``, wrapped by peft).

    From-scratch models take their vocabulary size and bos/eos/pad ids from the tokenizer. Loaded
    models are resized to ``len(tokenizer)`` so that the logit dimension V is exactly the
    tokenizer's vocabulary plus ``<bkspc>``; new rows get transformers' mean initialisation.
    ``device``: where to put the model (4-bit models are placed at load time; default: the
    current CUDA device if any, else CPU); ``None`` keeps non-quantized models on CPU.
    """
    ids = ensure_special_tokens(tokenizer)
    V = len(tokenizer)
    if cfg.load_in_4bit and (cfg.name_or_path is None or cfg.lora_r <= 0 or base is not None):
        raise ValueError("load_in_4bit (QLoRA) needs a pretrained name_or_path (not a model object) and lora_r > 0")
    # before any loading: a pretrained model's tokenizer must be its own (a model object: the caller's choice)
    added = [] if cfg.name_or_path is None or base is not None else check_own_tokenizer(cfg, tokenizer)
    if base is not None:
        hf = base
    elif cfg.name_or_path is None:
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_config(
            _from_scratch_config(cfg, V, ids),
            attn_implementation=cfg.attn_implementation,
            dtype=_dtype(cfg.torch_dtype),
        )
    else:
        hf = _load_base(cfg, device)
    n_old = hf.get_input_embeddings().weight.shape[0]
    if n_old != V:
        hf.resize_token_embeddings(V, mean_resizing=True)
    if not cfg.new_tokenizer:
        init_added_rows(hf, added, n_old)
    hf.config.bos_token_id, hf.config.eos_token_id, hf.config.pad_token_id = ids["bos_id"], ids["eos_id"], ids["pad_id"]
    max_positions = _max_positions(hf.config, cfg.max_position_embeddings)
    lm = _wrap(hf, cfg, ids["bkspc_id"])
    model = SeqMatchLM(lm, cfg, max_positions=max_positions, **ids)
    if device is not None and not cfg.load_in_4bit:
        model.to(device)
    return model


def _wrap(hf: nn.Module, cfg: ModelConfig, bkspc_id: int) -> nn.Module:
    if cfg.lora_r <= 0:
        _finish(hf, cfg)
        return hf
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.load_in_4bit:
        hf = prepare_model_for_kbit_training(
            hf,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    _finish(hf, cfg)
    return get_peft_model(hf, _lora_config(cfg, hf, bkspc_id))


# ------------------------------------------------------------------------------------------------
# save / load


def save_model(model: SeqMatchLM, tokenizer, out_dir: str | os.PathLike, *, card: dict | None = None) -> Path:
    """Write ``out_dir`` (safetensors and JSON only), a directory that transformers loads as it is.

    Full weights (``lora_r`` 0): ``config.json``, ``model.safetensors``, ``generation_config.json``
    (``AutoModelForCausalLM.from_pretrained(out_dir)``); LoRA: the peft adapter
    (``adapter_config.json``, ``adapter_model.safetensors``, the ``<bkspc>`` rows included). Beside
    them the tokenizer (``AutoTokenizer.from_pretrained(out_dir)``, ``<bkspc>`` included), the
    logit-offset head (``offset_head.safetensors``, which transformers does not read: it moves
    V(s) but not the softmax, so the policy is the same without it), a model card ``README.md``
    (``model_card``; ``card``: what the trainer knows of the run) and, last,
    ``seqmatch_model.json`` (ModelConfig, special ids, format), which ``load_model`` reads.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = "adapter" if model.is_peft else "full"
    model.lm.save_pretrained(out) if kind == "adapter" else model.hf_model.save_pretrained(out)
    if model.offset_head is not None:
        sd = {k: v.detach().contiguous().cpu() for k, v in model.offset_head.state_dict().items()}
        save_file(sd, str(out / HEAD_FILE))
    tokenizer.save_pretrained(out)
    meta = dict(
        format=FORMAT_VERSION,
        kind=kind,
        model_config=dataclasses.asdict(model.config),
        bkspc_id=model.bkspc_id,
        bos_id=model.bos_id,
        eos_id=model.eos_id,
        pad_id=model.pad_id,
        vocab_size=model.vocab_size,
        max_positions=model.max_positions,
    )
    atomic_write_text(out / "README.md", model_card(meta, card or {}))
    # written last and atomically: a model directory with this file is complete
    atomic_write_text(out / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True))
    return out


_METHODS = {
    "mle": "maximum likelihood (MLE) on clean data; it never learned to use `<bkspc>`",
    "bc": "behavioural cloning with backspace noise (\"MLE + `<bkspc>`\", paper App. E): after a random "
          "token the next action is `<bkspc>`",
    "sm": "SequenceMatch: a BC warm-up, then the χ²-mixture occupancy-matching objective on the data and on "
          "the model's own rollouts from a replay buffer",
    "ulk": "maximum likelihood plus the unlikelihood token loss (Welleck et al. 2019)",
}


def model_card(meta: dict, info: dict) -> str:
    """The model card (``README.md``) of a saved model: method, data, hyperparameters, metrics if
    known, how to load and generate with and without seqmatch, and why plain ``generate`` cannot
    apply ``<bkspc>``."""
    hp = info.get("hyperparameters", {})
    cfg = meta["model_config"]
    base = cfg.get("name_or_path") or f"a {cfg.get('arch')} model trained from scratch"
    lines = ["---", "library_name: transformers", "tags: [seqmatch, sequencematch, backspace]", "---", "",
             "# A causal LM with a `<bkspc>` action (seqmatch)", "",
             f"Trained with seqmatch, the reference implementation of SequenceMatch (Cundy & Ermon, "
             f"ICLR 2024). Method: {_METHODS.get(hp.get('method'), hp.get('method', 'unknown'))}. Base: "
             f"{base}{' + LoRA r=' + str(cfg['lora_r']) if cfg.get('lora_r') else ''}. The vocabulary has one more "
             f"token, `<bkspc>` (id {meta['bkspc_id']}): it deletes the last token of the sequence.", ""]
    if info.get("train_rows") is not None:
        digest = info.get("data_sha256", "")[:16]
        lines += [f"**Data**: {info['train_rows']} training rows (sha256 of the rows `{digest}…`), trained for "
                  f"{info.get('step')} steps.", ""]
    if hp:
        lines += ["| hyperparameter | value |", "|---|---|"] + [f"| `{k}` | {v} |" for k, v in hp.items()] + [""]
    if info.get("metrics"):
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.4g} |" for k, v in info["metrics"].items()] + [""]
    lines += [
        "## Generate with backspace (seqmatch)", "",
        "```python",
        "import seqmatch",
        "model, tokenizer = seqmatch.load_model(\"THIS_DIRECTORY\")",
        "out = seqmatch.generate(model, tokenizer, [\"What is 12 + 30? Solution:\"], max_new_tokens=32)",
        "print(out.texts[0])    # what the model wrote, every <bkspc> applied",
        "print(out.actions[0])  # the raw actions, <bkspc> written out",
        "```", "",
        "## Plain transformers", "",
        ("`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load this directory as "
         "it is." if meta["kind"] == "full" else
         "This directory is a LoRA adapter (peft) plus the tokenizer (`AutoTokenizer.from_pretrained` loads it). "
         "Where the base model's vocabulary lacked `<bkspc>`, `AutoModelForCausalLM.from_pretrained` cannot "
         "load the adapter as it is (the embedding sizes differ); resize the base first:"
         f"\n\n```python\nbase = AutoModelForCausalLM.from_pretrained({base!r})\n"
         f"base.resize_token_embeddings({meta['vocab_size']})\n"
         "model = peft.PeftModel.from_pretrained(base, \"THIS_DIRECTORY\")\n```\n\n"
         "(`seqmatch.load_model` does this.)") + " What they "
        "cannot do is apply `<bkspc>`: `model.generate` emits it as one more token, and the text keeps both "
        "the deleted token and the `<bkspc>` (`skip_special_tokens=True` drops the `<bkspc>` but not the "
        "token it deleted). A `LogitsProcessor` cannot fix this: it only reshapes the next-token "
        "distribution, while a backspace must change the *state*: the deleted token's slot of the KV cache "
        "must be switched off (or the cache rewound), and the token now last must be fed again as a copy "
        "at its own position id, so that the next step attends to exactly the tokens that remain "
        "(`seqmatch.generate` does this; `seqmatch.sampling` explains the cache layout). To sample without "
        "backspacing at all, pass `suppress_tokens=[%d]` to `generate`." % meta["bkspc_id"], "",
        "The logit-offset head of the paper (App. E; `offset_head.safetensors`) adds one number per position "
        "to every logit: it changes V(s) = logsumexp(logits), which the training objective uses, but not the "
        "softmax, so plain transformers samples exactly the policy seqmatch samples. `seqmatch.load_model` "
        "loads it too, for further training.", "",
    ]
    return "\n".join(lines)


def load_model(
    out_dir: str | os.PathLike, device: str | torch.device = "cpu", *, is_trainable: bool = True
) -> tuple[SeqMatchLM, Any]:
    """Load what ``save_model`` wrote: ``(model, tokenizer)``. Never unpickles.

    ``is_trainable``: LoRA adapters come back trainable (for resuming); the model is returned in
    train mode like ``build_model``'s, call ``.eval()`` for inference. Directories of seqmatch < 0.2
    (``hf/``, ``adapter/``, ``tokenizer/`` inside) load too.
    """
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = Path(out_dir)
    meta = json.loads((out / CONFIG_FILE).read_text())
    if meta.get("format") not in (1, FORMAT_VERSION):
        raise ValueError(f"{out}: unsupported seqmatch model format {meta.get('format')!r}")
    old = meta["format"] == 1  # weights and tokenizer in subdirectories
    cfg = ModelConfig.from_dict(meta["model_config"])
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer" if old else out, trust_remote_code=False)
    ids = {k: int(meta[k]) for k in ("bkspc_id", "bos_id", "eos_id", "pad_id")}
    if tokenizer.convert_tokens_to_ids(BKSPC_TOKEN) != ids["bkspc_id"]:
        raise ValueError(f"{out}: the saved tokenizer's <bkspc> id does not match the model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = ids["pad_id"]
    V = int(meta["vocab_size"])
    if meta["kind"] == "full":
        load_cfg = dataclasses.replace(cfg, load_in_4bit=False)
        hf = _load_base(load_cfg, device, path=str(out / "hf" if old else out))
        _finish(hf, cfg)
        lm = hf
    elif meta["kind"] == "adapter":
        from peft import PeftModel, prepare_model_for_kbit_training

        if cfg.name_or_path is None:
            raise ValueError(f"{out}: adapter checkpoint without a base name_or_path")
        hf = _load_base(cfg, device)
        if hf.get_input_embeddings().weight.shape[0] != V:
            hf.resize_token_embeddings(V, mean_resizing=False)
        if cfg.load_in_4bit:
            hf = prepare_model_for_kbit_training(
                hf,
                use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        _finish(hf, cfg)
        lm = PeftModel.from_pretrained(hf, str(out / "adapter" if old else out), is_trainable=is_trainable)
    else:
        raise ValueError(f"{out}: unknown checkpoint kind {meta['kind']!r}")
    hf_model = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    hf_model.config.bos_token_id, hf_model.config.eos_token_id, hf_model.config.pad_token_id = (
        ids["bos_id"],
        ids["eos_id"],
        ids["pad_id"],
    )
    model = SeqMatchLM(lm, cfg, max_positions=int(meta["max_positions"]), **ids)
    if model.offset_head is not None:
        sd = load_file(str(out / HEAD_FILE))
        model.offset_head.load_state_dict(sd)
    if not cfg.load_in_4bit:
        model.to(device)
    return model, tokenizer
