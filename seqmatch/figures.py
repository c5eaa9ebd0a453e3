"""Figures drawn from seqmatch's own outputs (not typed in).

Figure 2 (paper §4.1): the actions ``Apples are blue <bkspc> green`` turned into single-pass
inputs, targets, position ids and the attention mask by ``seqmatch.actions.actions_to_inputs``.
Everything the figure shows (inputs, targets, position ids, mask, and the states S_i, which are
read off the mask rows) comes from that function's output; only the words are given.

Without a tokenizer the words are ids of a word-level toy vocabulary (one token per word, as in
the paper's figure). With ``--tokenizer DIR`` (a tokenizer with ``<bos>`` and ``<bkspc>``, e.g.
one written by ``python -m seqmatch.data tokenizer``) each word is tokenized with it (a leading
space for every word but the first) and "blue" is deleted with as many ``<bkspc>`` as it has
tokens.

CLI::

    python -m seqmatch.figures figure2 [--tokenizer DIR] --out-pdf results/figure2.pdf \
        --out-png results/figure2.png
    python -m seqmatch.figures training-curves --out-dir results/training_curves/figure3 RUN_DIR...

Training curves: one PNG per run from its ``train_log.jsonl`` (losses, beta, V at the initial
states and the residue, the gradient norm and clip factor, per-part gradient norms and cosines
with the BC gradient, rollout statistics).
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from seqmatch.actions import BKSPC_TOKEN, IGNORE_INDEX, actions_to_inputs
from seqmatch.data.tokenizer import bos_token_id
from seqmatch.io import atomic_savefig

# the paper's example
FIG2_WORDS = ("Apples", "are", "blue")
FIG2_DELETE = "blue"  # deleted by <bkspc>
FIG2_NEXT = "green"
NA = "N/A"


class WordVocab:
    """Word-level toy vocabulary: specials then the words, one id each."""

    SPECIALS = ("<bos>", "<eos>", "<pad>", BKSPC_TOKEN)

    def __init__(self, words: Sequence[str]):
        self.itos = list(self.SPECIALS) + [w for w in dict.fromkeys(words) if w not in self.SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.bos_id = self.stoi["<bos>"]
        self.eos_id = self.stoi["<eos>"]
        self.bkspc_id = self.stoi[BKSPC_TOKEN]

    def word_ids(self, word: str, first: bool) -> list[int]:
        return [self.stoi[word]]

    def token_str(self, i: int) -> str:
        return self.itos[i]


class TokenizerVocab:
    """Adapter over a Hugging Face tokenizer that has ``<bkspc>`` (and a bos or an eos token)."""

    def __init__(self, tok):
        self.tok = tok
        bk = tok.convert_tokens_to_ids(BKSPC_TOKEN)
        if bk is None or bk == tok.unk_token_id:
            raise ValueError(f"tokenizer has no {BKSPC_TOKEN} token")
        self.bkspc_id = int(bk)
        self.bos_id = int(bos_token_id(tok))  # its eos where it has no bos, as training does
        self.eos_id = tok.eos_token_id

    def word_ids(self, word: str, first: bool) -> list[int]:
        return list(self.tok(word if first else " " + word, add_special_tokens=False)["input_ids"])

    def token_str(self, i: int) -> str:
        if i == self.bkspc_id:
            return BKSPC_TOKEN
        if i in self.tok.all_special_ids:
            return self.tok.convert_ids_to_tokens(i)
        s = self.tok.decode([i])
        # show a leading space as "␣" (e.g. GPT-2's " are" -> "␣are"), so token boundaries stay visible
        return s.replace(" ", "␣") if s.strip() == "" or s.startswith(" ") else s


def load_vocab(tokenizer_dir: str | None):
    if tokenizer_dir is None:
        return WordVocab(list(FIG2_WORDS) + [FIG2_NEXT])
    try:
        from seqmatch.data import load_tokenizer

        tok = load_tokenizer(tokenizer_dir)
    except ImportError:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return TokenizerVocab(tok)


def figure2_data(vocab=None) -> dict:
    """Everything Figure 2 draws, computed by ``actions_to_inputs`` from the example's actions.

    Returns a dict of lists: ``actions`` (strings), ``inputs``, ``targets`` (``"N/A"`` for the
    ignored last label), ``position_ids``, ``mask`` ([L+1][L+1] bools, query row i, key column j),
    ``states`` (tokens of state i in position order, read off mask row i), plus ``action_ids``,
    ``input_ids``, ``label_ids``.
    """
    if vocab is None:
        vocab = WordVocab(list(FIG2_WORDS) + [FIG2_NEXT])
    actions: list[int] = []
    for k, w in enumerate(FIG2_WORDS):
        ids = vocab.word_ids(w, first=k == 0)
        actions += ids
        if w == FIG2_DELETE:
            n_delete = len(ids)
    actions += [vocab.bkspc_id] * n_delete
    # "green" takes the deleted word's place: it follows "are", so it is not a first word
    actions += vocab.word_ids(FIG2_NEXT, first=False)

    t = actions_to_inputs(actions, bos_id=vocab.bos_id, bkspc_id=vocab.bkspc_id, eos_id=vocab.eos_id)
    mask = t.mask()
    input_ids = t.input_ids.tolist()
    pos = t.position_ids.tolist()
    labels = t.labels.tolist()
    states = []
    for i in range(len(input_ids)):
        vis = [j for j in range(len(input_ids)) if bool(mask[i, j])]
        vis.sort(key=lambda j: pos[j])
        states.append([vocab.token_str(input_ids[j]) for j in vis])
    return {
        "action_ids": actions,
        "actions": [vocab.token_str(a) for a in actions],
        "input_ids": input_ids,
        "inputs": [vocab.token_str(i) for i in input_ids],
        "label_ids": labels,
        "targets": [NA if lab == IGNORE_INDEX else vocab.token_str(lab) for lab in labels],
        "position_ids": pos,
        "mask": mask.tolist(),
        "states": states,
    }


def draw_figure2(data: dict, title_note: str = ""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    T = len(data["inputs"])
    line_h = 0.24  # inches per state line
    states_h = line_h * (T + 3)
    table_h = 1.7
    left_w = max(6.5, 0.62 * (T + 2))
    mask_w = max(4.0, 0.3 * T)
    fig_h = max(states_h + table_h, mask_w + 1.6)
    fig = plt.figure(figsize=(left_w + mask_w + 1.8, fig_h))
    gs = fig.add_gridspec(2, 2, width_ratios=[left_w, mask_w + 0.8],
                          height_ratios=[fig_h - table_h, table_h], wspace=0.15, hspace=0.05)

    # (top left) the logical trajectory: actions and states
    ax = fig.add_subplot(gs[0, 0])
    ax.axis("off")
    ax.set_title("Logical sequence trajectory", fontsize=11, loc="left")
    acts = "  ".join(data["actions"])
    step = line_h / (fig_h - table_h)  # one line in axes fraction
    ax.text(0.0, 1 - step, "Actions:", fontsize=9, weight="bold", transform=ax.transAxes, va="top")
    ax.text(0.16, 1 - step, acts, fontsize=9, family="monospace", transform=ax.transAxes, va="top")
    ax.text(0.0, 1 - 2.5 * step, "States:", fontsize=9, weight="bold", transform=ax.transAxes, va="top")
    for i, st in enumerate(data["states"]):
        ax.text(0.16, 1 - (2.5 + i) * step, f"S{i}: " + " ".join(st), fontsize=9, family="monospace",
                transform=ax.transAxes, va="top")

    # (bottom left) the single-pass inputs table
    ax = fig.add_subplot(gs[1, 0])
    ax.axis("off")
    ax.set_title("Single-pass loss inputs (actions_to_inputs)", fontsize=11, loc="left")
    rows = [("Input tokens", data["inputs"]), ("Targets", data["targets"]),
            ("Position IDs", [str(p) for p in data["position_ids"]])]
    cell = [[str(v) for v in r] for _, r in rows]
    tab = ax.table(cellText=cell, rowLabels=[r for r, _ in rows], colLabels=[f"{i}" for i in range(T)],
                   loc="upper center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9 if T <= 12 else 8)
    tab.scale(1.0, 1.5)
    for (r, c), cl in tab.get_celld().items():
        if r == 2 and c >= 0 and data["targets"][c] == BKSPC_TOKEN:
            cl.set_facecolor("#e8d8f0")  # a <bkspc> target
        if r == 1 and c >= 1 and data["actions"][c - 1] == BKSPC_TOKEN:
            cl.set_facecolor("#f6e3c8")  # an input copied by <bkspc> (with the copied position id)
    ax.text(0.0, -0.02, "purple: <bkspc> target;  orange: copy made by <bkspc>", fontsize=8, color="0.35",
            transform=ax.transAxes, va="top")

    # (right) the mask
    ax = fig.add_subplot(gs[:, 1])
    m = [[1 if v else 0 for v in row] for row in data["mask"]]
    ax.imshow(m, cmap=ListedColormap(["white", "#4a7ab8"]), vmin=0, vmax=1)
    labels = [f"{i}: {tok}" for i, tok in enumerate(data["inputs"])]
    ax.set_xticks(range(T))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(T))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xticks([x - 0.5 for x in range(T + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(T + 1)], minor=True)
    ax.grid(which="minor", color="0.6", lw=0.6)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("key input j")
    ax.set_ylabel("query input i")
    ax.set_title("Mask: shaded = input i attends to j\n(state S_i = the shaded inputs of row i)", fontsize=10)
    fig.suptitle("Figure 2: states and actions to single-pass inputs" + (f" ({title_note})" if title_note else ""),
                 fontsize=12)
    return fig


# ----------------------------------------------------------------------------------------------
# Training curves: one figure per run, from its train_log.jsonl (seqmatch.train's log lines)

# (panel title, y label, [(log key, legend label)], log-scale y)
CURVE_PANELS = (
    ("losses", "per token", [("loss", "minimised loss"), ("ce", "BC / MLE cross-entropy"),
                             ("sm_loss", "L_SM = -J / n")], False),
    ("schedule", "", [("beta", "beta (weight of L_BC)"), ("clip_factor", "clip factor")], False),
    ("V at the initial states", "V", [("sm_v0_data", "data rows V(s0)"), ("sm_v0_model", "model rows V(u0)"),
                                      ("sm_residue", "residue (V(s0) - V(u0)) / 2")], False),
    ("gradient norm before clipping", "norm", [("grad_norm", "step")], True),
    ("gradient of each loss part", "norm",
     [("gnorm_bc", "BC"), ("gnorm_sm", "L_SM"), ("gnorm_regularizer", "chi2_mix regulariser"),
      ("gnorm_residue", "plug-in residue (not trained)"), ("gnorm_step", "beta BC + (1 - beta) SM")], True),
    ("cosine with the BC gradient", "cos",
     [("gcos_sm_bc", "L_SM"), ("gcos_regularizer_bc", "regulariser"), ("gcos_residue_bc", "plug-in residue"),
      ("gcos_step_bc", "step")], False),
    ("rollouts (latest sampling round)", "",
     [("rollout_accuracy", "accuracy"), ("rollout_bkspc_rate", "<bkspc> rate"),
      ("rollout_finished", "reached <eos>")], False),
    ("rollout length", "actions", [("rollout_len", "mean generated actions")], False),
)


def draw_training_curves(records: list[dict], title: str):
    """The run's log as small panels (x: optimizer step); a quantity the run did not log (MLE has
    no SM terms) leaves its panel saying so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 7), squeeze=False)
    for ax, (name, ylabel, series, logy) in zip(axes.flat, CURVE_PANELS):
        drawn = False
        for key, label in series:
            pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if logy:
                pts = [(x, y) for x, y in pts if y > 0]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="." if len(pts) < 40 else None, lw=1.2, label=label)
                drawn = True
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if drawn:
            if logy:
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged by this run", ha="center", va="center", transform=ax.transAxes,
                    fontsize=9, color="grey")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def training_curves(run_dirs: Sequence[str], out_dir: str) -> list[str]:
    """``out_dir/<run id>.png`` for each run directory (its path below ``resources/runs/`` with
    '/' as '__'), written into a temporary directory that becomes ``out_dir`` when complete."""
    import json
    import shutil

    import matplotlib.pyplot as plt

    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    names = []
    for run in run_dirs:
        log = os.path.join(run, "train_log.jsonl")
        with open(log) as f:
            records = [json.loads(line) for line in f if line.strip()]
        if not records:
            raise ValueError(f"{log}: no log lines")
        parts = os.path.normpath(run).split(os.sep)
        run_id = "/".join(parts[parts.index("runs") + 1:]) if "runs" in parts else os.path.normpath(run)
        name = run_id.replace("/", "__") + ".png"
        fig = draw_training_curves(records, f"training curves: {run_id}")
        atomic_savefig(fig, os.path.join(tmp, name), dpi=80)
        plt.close(fig)
        names.append(name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Figures drawn from seqmatch's own outputs.")
    sub = ap.add_subparsers(dest="figure", required=True)
    f2 = sub.add_parser("figure2", help="Figure 2: Apples are blue <bkspc> green")
    f2.add_argument("--tokenizer", default=None, help="tokenizer dir (default: word-level toy vocabulary)")
    f2.add_argument("--out-pdf", required=True)
    f2.add_argument("--out-png", required=True)
    tc = sub.add_parser("training-curves", help="one PNG per run from its train_log.jsonl")
    tc.add_argument("--out-dir", required=True)
    tc.add_argument("runs", nargs="+", help="run directories (holding train_log.jsonl)")
    args = ap.parse_args(argv)
    if args.figure == "training-curves":
        try:
            training_curves(args.runs, args.out_dir)
        except (OSError, ValueError) as e:
            print(f"error: {e}")
            return 2
        return 0
    if args.figure == "figure2":
        vocab = load_vocab(args.tokenizer)
        data = figure2_data(vocab)
        if args.tokenizer is None:
            note = "word-level toy vocabulary"
        else:
            parts = os.path.normpath(args.tokenizer).split(os.sep)
            note = "tokenizer " + "/".join(parts[-2:])
        fig = draw_figure2(data, note)
        atomic_savefig(fig, args.out_pdf)
        atomic_savefig(fig, args.out_png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
