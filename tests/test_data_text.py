"""Text data: wiki markup stripping on a fixture wheel the test builds, article-level splits,
the hub loader on a local file in openwebtext's column layout, and the offline failure."""

from __future__ import annotations

import bz2
import hashlib
import json
import socket
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from seqmatch import data as D

REPO = Path(__file__).resolve().parents[1]

ADA = """{{Infobox person|name=Ada|birth_date={{birth date|1815|12|10}}}}
'''Ada Lovelace''' (10 December 1815&ndash;27 November 1852) was an [[England|English]] [[mathematician]] and writer, chiefly known for her work on [[Charles Babbage]]'s proposed mechanical general-purpose computer.<ref>{{cite book|title=Ada}}</ref> She was the first to recognise that the machine had applications beyond pure calculation.<ref name="a" />

== Early life ==
[[File:Ada Lovelace portrait.jpg|thumb|Portrait of [[Ada Lovelace]] in 1840]]
Her mother, Lady Byron, promoted Ada's interest in [[mathematics]] and [[logic]] in an effort to prevent her from developing her father's perceived insanity.<!-- a hidden comment --> Ada remained interested in science throughout her life, and she studied with [http://example.org tutors] of great renown.

* A list item that should be dropped because it is a list item and not a paragraph of prose at all.
{| class="wikitable"
| a cell || another cell with many words in it so that it would be long enough for a paragraph
|}
A short line.

[[Category:1815 births]]
[[fr:Ada Lovelace]]"""

ADA_EXPECTED = [
    "Ada Lovelace (10 December 1815\u201327 November 1852) was an English mathematician and writer, chiefly "
    "known for her work on Charles Babbage's proposed mechanical general-purpose computer. She was the first "
    "to recognise that the machine had applications beyond pure calculation.",
    "Her mother, Lady Byron, promoted Ada's interest in mathematics and logic in an effort to prevent her "
    "from developing her father's perceived insanity. Ada remained interested in science throughout her "
    "life, and she studied with tutors of great renown.",
]


def page(title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
    red = f'<redirect title="{redirect}" />' if redirect else ""
    return (f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>1</id>{red}<revision><id>2</id>"
            f'<text xml:space="preserve">{escape(text)}</text></revision></page>')


def article(i: int, n_par: int) -> str:
    return "\n\n".join(
        f"Article {i} paragraph {j} talks about topic number {i} in plain words, and it goes on for "
        f"long enough to count as a real paragraph of prose in the sample." for j in range(n_par))


def build_dump(pages: list[str]) -> bytes:
    xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">'
           "<siteinfo><sitename>Wikipedia</sitename></siteinfo>" + "".join(pages) + "</mediawiki>")
    return bz2.compress(xml.encode("utf-8"))


def build_wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr(member, data)
    return path


MEMBER = "pkg/test_data/enwiki-sample.xml.bz2"


@pytest.fixture()
def fixture_wheel(tmp_path):
    pages = [page("Ada Lovelace", ADA),
             page("AccessibleComputing", "#REDIRECT [[Computer accessibility]]", redirect="Computer accessibility"),
             page("Talk:Ada Lovelace", article(99, 2), ns=1)]
    pages += [page(f"Topic {i}", article(i, 3 + i % 3)) for i in range(12)]
    data = build_dump(pages)
    wheel = build_wheel(tmp_path / "fake-1.0-py3-none-any.whl", MEMBER, data)
    return wheel, D.WheelMember(MEMBER, hashlib.sha256(data).hexdigest())


def test_strip_wiki_markup_gives_plain_paragraphs():
    assert D.strip_wiki_markup(ADA, min_words=10) == ADA_EXPECTED


def test_wiki_extraction_from_fixture_wheel(fixture_wheel):
    wheel, member = fixture_wheel
    rows, info = D.wiki_sample_paragraphs(wheel, member=member, min_words=10)
    titles = [r["title"] for r in rows]
    assert "AccessibleComputing" not in titles and "Talk:Ada Lovelace" not in titles  # redirects, other ns
    assert [r["completion"] for r in rows if r["title"] == "Ada Lovelace"] == ADA_EXPECTED
    assert len(rows) == 2 + sum(3 + i % 3 for i in range(12))
    assert info["member_sha256"] == member.sha256 and info["pages"] == 13
    assert info["wheel_sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_member_checksum_is_verified(fixture_wheel):
    wheel, member = fixture_wheel
    with pytest.raises(D.ChecksumError):
        D.wiki_sample_paragraphs(wheel, member=D.WheelMember(member.path, "0" * 64))
    with pytest.raises(D.DataSourceError):
        D.read_wheel_member(wheel, "pkg/not-there.bz2")


def test_text_split_by_article_is_seeded_and_disjoint(fixture_wheel, tmp_path):
    wheel, member = fixture_wheel
    kw = dict(n_train=None, n_test=6, wheel_path=str(wheel), wiki_member=member, min_words=10)
    a = D.build_text("wiki-sample", seed=1, **kw)
    b = D.build_text("wiki-sample", seed=1, **kw)
    c = D.build_text("wiki-sample", seed=2, **kw)
    train, test, meta = a
    assert (train, test) == (b[0], b[1]) and (train, test) != (c[0], c[1])
    assert len(test) == 6
    assert not {r["title"] for r in train} & {r["title"] for r in test}
    assert not {r["completion"] for r in train} & {r["completion"] for r in test}
    for r in train + test:
        assert r["prompt"] == "" and r["completion"] and r["source"].startswith("wiki-sample:")
    assert meta["stand_in_for"].startswith("openwebtext") and meta["licenses"]


def test_split_by_group_sizes():
    rows = [{"g": f"a{i // 4}", "completion": str(i)} for i in range(40)]
    train, test = D.split_by_group(rows, "g", n_test=10, seed=0)
    assert len(test) == 10 and len(train) == 28  # 3 groups of 4 go to test, 2 rows of the 3rd dropped
    assert not {r["g"] for r in train} & {r["g"] for r in test}


def test_hub_text_loader_on_local_openwebtext_layout(tmp_path):
    docs = [f"Document number {i}.\nIt has two lines." for i in range(30)]
    docs += ["Document number 3.\nIt has two lines."]  # a duplicate
    f = tmp_path / "owt.jsonl"
    # an empty row of a local file is an error naming its line (issue 23), not skipped in silence
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs + [""]))
    with pytest.raises(D.DataSourceError, match=r"owt.jsonl:32: empty value of 'text'"):
        D.build_text("hub", hub_id=str(f), n_train=20, n_test=5, seed=0)
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    train, test, meta = D.build_text("hub", hub_id=str(f), n_train=20, n_test=5, seed=0)
    assert len(train) == 20 and len(test) == 5
    texts = [r["completion"] for r in train + test]
    assert len(set(texts)) == 25 and set(texts) <= set(docs[:30])
    assert all(r["prompt"] == "" and r["source"] == "local:owt.jsonl" for r in train + test)
    assert meta["inputs"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_hub_text_loader_reads_parquet_directory(tmp_path):
    import pandas as pd

    d = tmp_path / "owt"
    d.mkdir()
    pd.DataFrame({"text": [f"Parquet document {i}." for i in range(12)]}).to_parquet(d / "train-00000.parquet")
    train, test, _ = D.build_text("hub", hub_id=str(d), n_train=8, n_test=4, seed=3)
    assert sorted(r["completion"] for r in train + test) == sorted(f"Parquet document {i}." for i in range(12))


def test_hub_offline_setting_fails_at_once_with_message(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(D.HubUnavailableError) as e:
        D.build_text("hub", hub_id="Skylion007/openwebtext", n_train=3, n_test=1)
    assert "Skylion007/openwebtext" in str(e.value) and "config.yaml" in str(e.value)


def test_hub_no_network_fails_at_once(monkeypatch):
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    def no_network(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(D.HubUnavailableError) as e:
        D.load_hub_dataset("some-org/some-text", split="train")
    assert "some-org/some-text" in str(e.value) and "offline" in str(e.value)


def test_cli_text_hub_local(tmp_path):
    f = tmp_path / "owt.jsonl"
    f.write_text("".join(json.dumps({"text": f"Doc {i} text."}) + "\n" for i in range(10)))
    meta = D.main(["text", "--source", "hub", "--hub-id", str(f), "--n-train", "6", "--n-test", "3",
                   "--out-dir", str(tmp_path / "out")])
    assert meta["sizes"] == {"train": 6, "val": 0, "test": 3}
    saved = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert saved["source"] == "local:owt.jsonl" and saved["seed"] == 0


WHEEL = REPO / "resources" / "wheels" / D.GENSIM_WHEEL.filename


@pytest.mark.skipif(not WHEEL.is_file(), reason="pinned gensim wheel not in resources/ (fetched by the CLI)")
def test_real_pinned_wiki_sample():
    rows, info = D.wiki_sample_paragraphs(WHEEL)
    assert info["member_sha256"] == D.WIKI_MEMBER.sha256
    assert info["pages"] > 100 and len(rows) > 4000 and info["chars"] > 2_000_000
    bad = [r for r in rows if any(s in r["completion"] for s in ("[[", "]]", "{{", "}}", "<ref", "'''"))]
    assert not bad


def test_fetch_wheel_uses_cache_and_reports_pip_failure(tmp_path, monkeypatch):
    wheel = D.PinnedWheel("gensim", "4.4.0", "gensim-4.4.0-fake.whl", "LGPL")
    cmd = wheel.pip_command(tmp_path / "wheels")
    assert cmd[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert "gensim==4.4.0" in cmd and cmd[-2:] == ["-d", str(tmp_path / "wheels")]

    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: No matching distribution found"

    calls = []
    monkeypatch.setattr(D.sources.subprocess, "run", lambda *a, **k: calls.append(a) or Failed())
    with pytest.raises(D.DataSourceError) as e:
        D.fetch_wheel(wheel, tmp_path)
    assert "gensim==4.4.0" in str(e.value) and "No matching distribution" in str(e.value)
    (tmp_path / "wheels" / wheel.filename).write_bytes(b"cached")
    assert D.fetch_wheel(wheel, tmp_path) == tmp_path / "wheels" / wheel.filename
    assert len(calls) == 1  # the cached wheel is not fetched again


def test_cli_hub_offline_exits_with_message(tmp_path):
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "HF_DATASETS_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "seqmatch.data", "text", "--source", "hub",
                           "--out-dir", str(tmp_path / "o")], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert "Skylion007/openwebtext" in proc.stderr and "config.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_script_datasets_fall_back_to_the_parquet_export(monkeypatch):
    import datasets

    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(D.sources, "_hub_offline_reason", lambda: (None, False))
    calls = []

    def fake_load(path, name=None, *, split, revision, streaming):
        calls.append(revision)
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py")
        return datasets.Dataset.from_dict({"text": [f"doc {i}" for i in range(8)]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    train, test, meta = D.build_text("hub", hub_id="Skylion007/openwebtext", n_train=5, n_test=2)
    assert calls == [None, "refs/convert/parquet"]
    assert len(train) == 5 and len(test) == 2 and train[0]["source"] == "hub:Skylion007/openwebtext"
    assert meta["inputs"][0]["revision"] == "refs/convert/parquet"
