"""Text data (paper §6.2): openwebtext on the hub; offline, the Wikipedia sample in the gensim wheel.

Rows: ``prompt = ""``, ``completion = text`` (a paragraph, or a hub document), plus ``title`` (wiki).

Sources. Paper profile: ``Skylion007/openwebtext`` through ``datasets``. Offline profile: the English
Wikipedia sample inside the ``gensim==4.4.0`` wheel (:data:`GENSIM_WHEEL`, :data:`WIKI_MEMBER`),
paragraphs split into train and test by article.
"""

from __future__ import annotations

import bz2
import html
import os
import random
import re
from pathlib import Path
from typing import Iterator, Sequence
from xml.etree import ElementTree

from seqmatch.data.sources import (
    DEFAULT_CACHE_DIR,
    DataSourceError,
    PinnedWheel,
    WheelMember,
    _hub_inputs,
    _hub_source_name,
    _shuffled,
    hub_license,
    fetch_wheel,
    load_hub_dataset,
    read_wheel_member,
    sha256_bytes,
    sha256_file,
)


GENSIM_WHEEL = PinnedWheel(
    "gensim", "4.4.0",
    "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    license="LGPL-2.1-only (gensim code; we read only its test data)",
    # The member is data, identical in every gensim 4.4.0 wheel; these flags fetch the same file
    # whatever Python/platform runs the fetch.
    pip_args=("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--platform", "manylinux_2_28_x86_64"),
)
WIKI_MEMBER = WheelMember(
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
)
WIKI_LICENSE = "CC BY-SA 3.0 / GFDL (English Wikipedia text, 2016 dump sample shipped in gensim 4.4.0)"


# ----------------------------------------------------------------------------------------------
# text (paper §6.2): openwebtext on the hub; offline, the Wikipedia sample in the gensim wheel

_WIKI_DROP_BLOCKS = re.compile(
    r"<(ref|math|gallery|timeline|syntaxhighlight|source|pre|score|imagemap|chem|hiero|graph|table)\b[^>]*?"
    r"(?:/>|>.*?</\1\s*>)", re.S | re.I)
_WIKI_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WIKI_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_WIKI_TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)
_WIKI_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_WIKI_EXTLINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
_WIKI_TAG = re.compile(r"</?[A-Za-z][^<>]*?/?>")
_WIKI_DROP_NS = {"file", "image", "category", "media", "wikipedia", "wp", "template", "help",
                 "portal", "special", "user", "talk", "wikt", "wiktionary", "s", "q", "n", "b", "v",
                 "commons", "meta", "mw", "species", "wikisource", "wikiquote", "wikibooks", "d"}
_WIKI_BAD_CHARS = re.compile(r"[{}\[\]|<>=]|https?:|&\w+;|__")


def _wiki_link(m: re.Match) -> str:
    inner = m.group(1)
    target, _, label = inner.partition("|")
    t = target.strip()
    if ":" in t and not t.startswith(":"):
        ns = t.split(":", 1)[0].strip().lower()
        if ns in _WIKI_DROP_NS or re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", ns):
            return ""
    text = inner.rsplit("|", 1)[1] if "|" in inner else t.lstrip(":")
    return text


def _iterate_sub(pattern: re.Pattern, repl, text: str, limit: int = 50) -> str:
    for _ in range(limit):
        new = pattern.sub(repl, text)
        if new == text:
            break
        text = new
    return text


def strip_wiki_markup(wikitext: str, *, min_words: int = 20) -> list[str]:
    """Plain-prose paragraphs of one article's wikitext (templates, tables, refs, files, lists and
    headings removed; links replaced by their labels). Paragraphs shorter than ``min_words`` words or
    with leftover markup are dropped."""
    s = _WIKI_COMMENT.sub("", wikitext)
    s = _WIKI_DROP_BLOCKS.sub("", s)
    s = re.sub(r"<ref\b[^>]*/>", "", s, flags=re.I)
    s = _iterate_sub(_WIKI_TEMPLATE, "", s)
    s = _iterate_sub(_WIKI_TABLE, "", s)
    s = _iterate_sub(_WIKI_LINK, _wiki_link, s)
    s = _WIKI_EXTLINK.sub(lambda m: m.group(1) or "", s)
    s = re.sub(r"'{2,}", "", s)
    s = _WIKI_TAG.sub("", s)
    s = html.unescape(s).replace("\xa0", " ").replace("\u200b", "")
    paragraphs = []
    for line in s.split("\n"):
        line = line.strip()
        if not line or line[0] in "=*#:;|!{}" or line.startswith("__"):
            continue
        line = re.sub(r"\(\s*[,;:]?\s*\)", "", line)  # "()" left by removed templates
        line = re.sub(r"\(\s*[,;]\s*", "(", line)
        line = re.sub(r"\s+([,.;:!?)])", r"\1", line)
        line = re.sub(r"\(\s+", "(", line)
        line = re.sub(r"[ \t]{2,}", " ", line).strip()
        if len(line.split()) < min_words or _WIKI_BAD_CHARS.search(line):
            continue
        if not re.search(r"[.!?\"')]$", line):
            continue
        paragraphs.append(line)
    return paragraphs


def iter_wiki_pages(xml_bytes: bytes) -> Iterator[tuple[str, str]]:
    """(title, wikitext) of the main-namespace, non-redirect pages of a MediaWiki XML export."""
    import io

    title, ns, text, redirect = None, None, None, False
    for _, elem in ElementTree.iterparse(io.BytesIO(xml_bytes), events=("end",)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "title":
            title = elem.text or ""
        elif tag == "ns":
            ns = (elem.text or "").strip()
        elif tag == "redirect":
            redirect = True
        elif tag == "text":
            text = elem.text or ""
        elif tag == "page":
            if ns in ("0", None) and not redirect and text and not text.lstrip().upper().startswith("#REDIRECT"):
                yield title or "", text
            title, ns, text, redirect = None, None, None, False
            elem.clear()


def wiki_sample_paragraphs(wheel_path: str | os.PathLike | None = None, *,
                           cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                           member: WheelMember = WIKI_MEMBER, min_words: int = 20) -> tuple[list[dict], dict]:
    """Paragraph rows from the Wikipedia sample in the gensim wheel (fetched if ``wheel_path`` is None).

    Returns ``(rows, info)``; rows carry ``title`` (the article) and are in article order.
    """
    if wheel_path is None:
        wheel_path = fetch_wheel(GENSIM_WHEEL, cache_dir)
        wheel_name = GENSIM_WHEEL.requirement
    else:
        wheel_name = Path(wheel_path).name
    raw = read_wheel_member(wheel_path, member)
    xml_bytes = bz2.decompress(raw) if member.path.endswith(".bz2") else raw
    rows, seen = [], set()
    n_pages = 0
    for title, text in iter_wiki_pages(xml_bytes):
        n_pages += 1
        for p in strip_wiki_markup(text, min_words=min_words):
            if p in seen:
                continue
            seen.add(p)
            rows.append({"prompt": "", "completion": p, "title": title})
    info = {"wheel": wheel_name, "wheel_file": Path(wheel_path).name, "wheel_sha256": sha256_file(wheel_path),
            "member": member.path, "member_sha256": sha256_bytes(raw), "xml_sha256": sha256_bytes(xml_bytes),
            "pages": n_pages, "paragraphs": len(rows), "chars": sum(len(r["completion"]) for r in rows)}
    return rows, info


def split_by_group(rows: Sequence[dict], key: str, *, n_test: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded split keeping every group (e.g. article) on one side; test gets ~``n_test`` rows, exactly
    ``n_test`` after truncation. Both sides come back shuffled."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    test, train = [], []
    for name in names:
        (test if len(test) < n_test else train).extend(groups[name])
    rng = random.Random(seed + 1)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test[:n_test]


def build_text(source: str, *, n_train: int | None, n_test: int, seed: int = 0,
               cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, wheel_path: str | None = None,
               wiki_member: WheelMember = WIKI_MEMBER, hub_id: str = "Skylion007/openwebtext",
               hub_config: str | None = None,
               revision: str | None = None, streaming: bool | None = None, min_words: int = 20,
               max_chars: int | None = None, task: str = "text") -> tuple[list[dict], list[dict], dict]:
    """Text rows ``(train, test, meta)``: paragraphs of the Wikipedia sample, or hub documents.
    ``task``: the config's name of the task (its keys in messages)."""
    if source == "wiki-sample":
        rows, info = wiki_sample_paragraphs(wheel_path, cache_dir=cache_dir, member=wiki_member,
                                            min_words=min_words)
        if max_chars:
            rows = [r for r in rows if len(r["completion"]) <= max_chars]
        src = f"wiki-sample:{info['wheel']}:{wiki_member.path.rsplit('/', 1)[-1]}"
        for r in rows:
            r["source"] = src
        train, test = split_by_group(rows, "title", n_test=n_test, seed=seed)
        if n_train is not None:
            train = train[:n_train]
        if len(test) < n_test:
            raise DataSourceError(f"wiki sample has only {len(rows)} paragraphs; cannot hold out {n_test}")
        meta = {"kind": "text", "source": src, "stand_in_for": "openwebtext (paper §6.2)",
                "licenses": [WIKI_LICENSE], "inputs": [info], "seed": seed,
                "settings": {"min_words": min_words, "max_chars": max_chars,
                             "unit": "paragraph; train/test split by article"}}
        return train, test, meta
    if source != "hub":
        raise ValueError(f"unknown text source {source!r}")
    src = _hub_source_name(hub_id, hub_config)
    ds = _shuffled(load_hub_dataset(hub_id, config=hub_config, split="train", revision=revision,
                                    streaming=streaming, fields=("text",)), seed)
    n_train = 200_000 if n_train is None else n_train
    train, test, seen = [], [], set()
    for ex in ds:
        if len(train) >= n_train:
            break
        text = str(ex["text"]).strip()
        if not text or text in seen or (max_chars and len(text) > max_chars):
            continue
        seen.add(text)
        row = {"prompt": "", "completion": text, "source": src}
        (test if len(test) < n_test else train).append(row)
    license = hub_license(hub_id, task, "Skylion007/openwebtext", "see the hub dataset card")
    meta = {"kind": "text", "source": src, "stand_in_for": None, "licenses": [license],
            "inputs": _hub_inputs(hub_id, hub_config, revision), "seed": seed,
            "settings": {"max_chars": max_chars, "unit": "document; first n_test of the seeded "
                         "shuffle are test"}}
    return train, test, meta
