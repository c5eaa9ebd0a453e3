"""Translation data: .po/.mo parsing and filtering on catalogs the tests write, a fixture wheel,
de-duplication, licenses, the length filter, prompt format, and the hub loader on a local file in
opus_books' column layout. The .mo writer here is checked against the standard library's gettext."""

from __future__ import annotations

import gettext
import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import pytest

from seqmatch import data as D

REPO = Path(__file__).resolve().parents[1]

PO = r'''# Translations for a fixture project.
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\n"

#: a.py:1
msgid "Save the document"
msgstr "Enregistrer le document"

#: a.py:2
#, fuzzy
msgid "Delete the file"
msgstr "Supprimer le fichier"

#, python-format
msgid "Hello %(name)s, welcome"
msgstr "Bonjour %(name)s, bienvenue"

msgid "Open {0} files now"
msgstr "Ouvrir {0} fichiers maintenant"

msgid "Show %s more items"
msgstr "Afficher %s éléments de plus"

msgid "Click <b>here</b> now"
msgstr "Cliquez <b>ici</b> maintenant"

msgid ""
"A long message that spans "
"two lines"
msgstr ""
"Un long message qui s'étend "
"sur deux lignes"

msgctxt "menu"
msgid "Close the window"
msgstr "Fermer la fenêtre"

msgid "One file"
msgid_plural "Many files"
msgstr[0] "Un fichier"
msgstr[1] "Plusieurs fichiers"

msgid "Untranslated entry here"
msgstr ""

msgid "Say \"yes\" please"
msgstr "Dites \"oui\" s'il vous plaît"

msgid "First line\nSecond line"
msgstr "Première ligne\nDeuxième ligne"

#~ msgid "Old obsolete entry"
#~ msgstr "Ancienne entrée obsolète"

msgid "Visit https://example.org today"
msgstr "Visitez https://example.org aujourd'hui"

msgid "Email"
msgstr "Courriel"

msgid "Same in both languages"
msgstr "Same in both languages"
'''

PO_EXPECTED = [  # written by hand from the catalog above
    ("Save the document", "Enregistrer le document"),
    ("A long message that spans two lines", "Un long message qui s'étend sur deux lignes"),
    ("Close the window", "Fermer la fenêtre"),
    ('Say "yes" please', "Dites \"oui\" s'il vous plaît"),
]

MO_MESSAGES = {  # (context, msgid) or plural tuple -> translation(s)
    "Open the notebook": "Ouvrir le carnet",
    "Save the document": "Sauvegarder le document",  # duplicate English: the .po entry wins
    ("view", "Toggle the sidebar"): "Basculer la barre latérale",
    "Restart the kernel %1": "Redémarrer le noyau %1",
    ("Remove one cell", "Remove cells"): ("Supprimer une cellule", "Supprimer des cellules"),
}


def write_mo(messages: dict) -> bytes:
    """A GNU .mo file (little-endian, no hash table) from {msgid|(ctx, msgid)|(sing, plural): str|tuple}."""
    items = [("", "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n")]
    for key, val in messages.items():
        if isinstance(val, tuple):
            items.append(("\x00".join(key), "\x00".join(val)))
        elif isinstance(key, tuple):
            items.append((key[0] + "\x04" + key[1], val))
        else:
            items.append((key, val))
    items.sort(key=lambda kv: kv[0].encode("utf-8"))
    ids = [k.encode("utf-8") for k, _ in items]
    strs = [v.encode("utf-8") for _, v in items]
    n = len(items)
    orig_off, trans_off = 28, 28 + 8 * n
    data_off = 28 + 16 * n
    otab, ttab, blob = b"", b"", b""
    for s in ids:
        otab += struct.pack("<2I", len(s), data_off + len(blob))
        blob += s + b"\x00"
    for s in strs:
        ttab += struct.pack("<2I", len(s), data_off + len(blob))
        blob += s + b"\x00"
    header = struct.pack("<7I", 0x950412DE, 0, n, orig_off, trans_off, 0, data_off)
    return header + otab + ttab + blob


def test_mo_writer_matches_stdlib_gettext():
    tr = gettext.GNUTranslations(io.BytesIO(write_mo(MO_MESSAGES)))
    assert tr.gettext("Open the notebook") == "Ouvrir le carnet"
    assert tr.pgettext("view", "Toggle the sidebar") == "Basculer la barre latérale"
    assert tr.ngettext("Remove one cell", "Remove cells", 5) == "Supprimer des cellules"


def test_parse_po_entries():
    entries = D.parse_po(PO)
    by_id = {e.msgid: e for e in entries}
    assert len(entries) == 17  # header + 16 messages (obsolete included, flagged)
    assert by_id["Delete the file"].flags == frozenset({"fuzzy"})
    assert by_id["A long message that spans two lines"].msgstr == "Un long message qui s'étend sur deux lignes"
    assert by_id["Close the window"].msgctxt == "menu"
    assert by_id["One file"].msgid_plural == "Many files"
    assert by_id["One file"].msgstr_plural == {0: "Un fichier", 1: "Plusieurs fichiers"}
    assert by_id['Say "yes" please'].msgstr == "Dites \"oui\" s'il vous plaît"
    assert by_id["First line\nSecond line"].msgstr == "Première ligne\nDeuxième ligne"
    assert by_id["Old obsolete entry"].obsolete and not by_id["Save the document"].obsolete
    assert by_id[""].msgstr.startswith("Content-Type")


def test_catalog_pairs_keep_only_translated_natural_language():
    pairs, stats = D.catalog_pairs(D.parse_po(PO), min_words=2)
    assert pairs == PO_EXPECTED
    assert stats["fuzzy"] == 1 and stats["obsolete"] == 1 and stats["plural"] == 1
    assert stats["untranslated"] == 1 and stats["identical"] == 1 and stats["kept"] == 4


@pytest.mark.parametrize("text,ok", [
    ("Save the document", True), ("L'élève a réussi.", True), ("Save & close the file", True),
    ("Hello %(name)s", False), ("Hello %s", False), ("%d files", False), ("Open {0}", False),
    ("{{count}} items", False), ("Cost ${price}", False), ("Restart kernel %1", False),
    ("<b>Bold</b> text", False), ("Use `code` here", False), ("See [the docs](x)", False),
    ("Go to https://x.org", False), ("Use d3.js here", False), ("a\nb", False), ("my_variable name", False),
    ("Fish &amp; chips", False), ("1234 5678", False), ("", False),
])
def test_is_natural_language(text, ok):
    assert D.is_natural_language(text) is ok


def test_parse_mo_matches_written_catalog():
    entries = D.parse_mo(write_mo(MO_MESSAGES))
    got = {(e.msgctxt, e.msgid): e for e in entries if e.msgid}
    assert got[(None, "Open the notebook")].msgstr == "Ouvrir le carnet"
    assert got[("view", "Toggle the sidebar")].msgstr == "Basculer la barre latérale"
    plural = got[(None, "Remove one cell")]
    assert plural.msgid_plural == "Remove cells" and plural.msgstr_plural[1] == "Supprimer des cellules"


@pytest.fixture()
def fixture_sources(tmp_path):
    po_bytes, mo_bytes = PO.encode("utf-8"), write_mo(MO_MESSAGES)
    wheel_a = tmp_path / "proja-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel_a, "w") as zf:
        zf.writestr("proja/translations/fr/LC_MESSAGES/messages.po", po_bytes)
    wheel_b = tmp_path / "projb-2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel_b, "w") as zf:
        zf.writestr("projb/locale/fr/LC_MESSAGES/app.mo", mo_bytes)
    sources = (
        D.CatalogSource(D.PinnedWheel("proja", "1.0", wheel_a.name, "MIT"),
                        (D.WheelMember("proja/translations/fr/LC_MESSAGES/messages.po",
                                       hashlib.sha256(po_bytes).hexdigest()),), "MIT"),
        D.CatalogSource(D.PinnedWheel("projb", "2.0", wheel_b.name, "BSD-3-Clause"),
                        (D.WheelMember("projb/locale/fr/LC_MESSAGES/app.mo",
                                       hashlib.sha256(mo_bytes).hexdigest()),), "BSD-3-Clause"),
    )
    return sources, {"proja": wheel_a, "projb": wheel_b}


def test_gettext_pairs_from_fixture_wheels(fixture_sources):
    sources, paths = fixture_sources
    rows, infos = D.gettext_pairs(sources, wheel_paths=paths)
    pairs = [(r["en"], r["fr"]) for r in rows]
    mo_expected = [("Open the notebook", "Ouvrir le carnet"),
                   ("Toggle the sidebar", "Basculer la barre latérale")]
    assert sorted(pairs) == sorted(PO_EXPECTED + mo_expected)
    by_en = {r["en"]: r for r in rows}
    assert by_en["Save the document"]["fr"] == "Enregistrer le document"  # first source wins
    assert by_en["Save the document"]["license"] == "MIT"
    assert by_en["Open the notebook"]["license"] == "BSD-3-Clause"
    assert by_en["Open the notebook"]["source"] == "gettext:projb==2.0:projb/locale/fr/LC_MESSAGES/app.mo"
    for r in rows:
        assert r["prompt"] == f"English: {r['en']}\nFrench:" and r["completion"] == " " + r["fr"]
    assert [i["license"] for i in infos] == ["MIT", "BSD-3-Clause"]
    assert infos[1]["pairs_after_dedup"] == 2


def test_gettext_checksum_mismatch_raises(fixture_sources):
    sources, paths = fixture_sources
    bad = D.CatalogSource(sources[0].wheel, (D.WheelMember(sources[0].members[0].path, "f" * 64),), "MIT")
    with pytest.raises(D.ChecksumError):
        D.gettext_pairs([bad], wheel_paths=paths)


def test_build_translation_split_and_length_filter(fixture_sources):
    sources, paths = fixture_sources
    train, test, meta = D.build_translation("gettext", n_train=None, n_test=2, seed=0, sources=sources,
                                            wheel_paths=paths)
    assert len(test) == 2 and len(train) == 4
    assert not {r["en"] for r in train} & {r["en"] for r in test}
    again = D.build_translation("gettext", n_train=None, n_test=2, seed=0, sources=sources, wheel_paths=paths)
    assert (train, test) == again[:2]
    assert meta["stand_in_for"].startswith("opus_books") and len(meta["licenses"]) == 2
    # a tokenizer that counts characters: only pairs with both sides under 20 characters survive
    char_tok = type("CharTok", (), {"encode": lambda self, s, add_special_tokens=False: list(s)})()
    train, test, meta = D.build_translation("gettext", n_train=None, n_test=1, seed=0, sources=sources,
                                            wheel_paths=paths, tokenizer=char_tok, max_tokens=20)
    kept = {r["en"] for r in train + test}
    expected = {en for en, fr in PO_EXPECTED + [("Open the notebook", "Ouvrir le carnet"),
                                                ("Toggle the sidebar", "Basculer la barre latérale")]
                if len(en) < 20 and len(fr) < 20}
    assert kept == expected


def test_estimate_tokens():
    assert D.estimate_tokens("abc") == 1
    assert D.estimate_tokens("a b c d") == 4  # 4 words > ceil(7 / 3) = 3
    assert D.estimate_tokens("x" * 190) == 64  # ceil(190 / 3)


def test_hub_translation_loader_on_local_opus_books_layout(tmp_path):
    rows = [{"id": str(i), "translation": {"en": f"Sentence number {i}.", "fr": f"Phrase numéro {i}."}}
            for i in range(20)]
    rows.append({"id": "x", "translation": {"en": "word " * 80, "fr": "mot " * 80}})  # too long
    rows.append({"id": "y", "translation": {"en": "Sentence number 3.", "fr": "Doublon."}})  # duplicate en
    f = tmp_path / "opus_books.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    train, test, meta = D.build_translation("hub", hub_id=str(f), n_train=None, n_test=5, seed=1)
    assert len(train) == 15 and len(test) == 5
    got = {(r["en"], r["fr"]) for r in train + test}
    assert got == {(f"Sentence number {i}.", f"Phrase numéro {i}.") for i in range(20)}
    assert meta["settings"]["pairs_before_length_filter"] == 21
    assert all(r["source"] == "local:opus_books.jsonl/en-fr" for r in train)
    out = tmp_path / "out"
    D.main(["translation", "--source", "hub", "--hub-id", str(f), "--n-test", "5", "--seed", "1",
            "--out-dir", str(out)])
    saved = [json.loads(line) for line in (out / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert saved == test


def test_hub_translation_offline_message(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(D.HubUnavailableError) as e:
        D.build_translation("hub", n_train=None, n_test=5)
    assert "Helsinki-NLP/opus_books" in str(e.value) and "config.yaml" in str(e.value)


WHEELS = REPO / "resources" / "wheels"


@pytest.mark.skipif(not all((WHEELS / s.wheel.filename).is_file() for s in D.GETTEXT_SOURCES),
                    reason="pinned gettext wheels not in resources/ (fetched by the CLI)")
def test_real_pinned_catalogs():
    paths = {s.wheel.name: WHEELS / s.wheel.filename for s in D.GETTEXT_SOURCES}
    rows, infos = D.gettext_pairs(wheel_paths=paths)
    assert len(rows) > 5000
    assert {i["license"] for i in infos} == {"MIT", "Apache-2.0", "BSD-3-Clause"}
    assert len({r["en"] for r in rows}) == len(rows)
    assert all(D.is_natural_language(r["en"], min_words=2) and D.is_natural_language(r["fr"]) for r in rows)
