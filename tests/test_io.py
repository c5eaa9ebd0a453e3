"""seqmatch.io: atomic writes (old file kept, no temporary file left on error), exact file contents."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seqmatch import io as sio


def leftovers(d):
    return [p.name for p in d.rglob(f"{sio.TMP_PREFIX}*")]


class Unserialisable:
    pass


# ------------------------------------------------------------------------------ exact contents


def test_write_json_exact_bytes(tmp_path):
    p = tmp_path / "a" / "b" / "x.json"  # parent directories created
    sio.write_json(p, {"z": 1, "a": ["é", 2.5, None, True], "nan": float("nan")})
    assert p.read_bytes() == ('{\n  "z": 1,\n  "a": [\n    "é",\n    2.5,\n    null,\n    true\n  ],\n'
                              '  "nan": null\n}\n').encode()
    sio.write_json(p, {"z": 1, "a": {}}, sort_keys=True)
    assert p.read_bytes() == b'{\n  "a": {},\n  "z": 1\n}\n'
    assert leftovers(tmp_path) == []


def test_write_json_numpy_and_non_finite(tmp_path):
    p = tmp_path / "x.json"
    sio.write_json(p, {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "a": np.array([1.0, np.nan]),
                       "f32nan": np.float32("nan"), "inf": [float("-inf")], "t": (1, 2)})
    assert json.loads(p.read_text()) == {"i": 3, "f": 0.5, "b": True, "a": [1.0, None], "f32nan": None,
                                         "inf": [None], "t": [1, 2]}


def test_write_jsonl_exact_bytes_and_count(tmp_path):
    p = tmp_path / "d" / "rows.jsonl"
    rows = ({"prompt": "2 + 2 =", "completion": " 4", "k": i} for i in range(2))  # a generator is fine
    assert sio.write_jsonl(p, rows) == 2
    assert p.read_bytes() == (b'{"prompt": "2 + 2 =", "completion": " 4", "k": 0}\n'
                              b'{"prompt": "2 + 2 =", "completion": " 4", "k": 1}\n')
    assert sio.write_jsonl(p, [{"s": "ü\n✓"}, {}]) == 2
    assert p.read_bytes() == '{"s": "ü\\n✓"}\n{}\n'.encode()
    assert sio.write_jsonl(p, []) == 0 and p.read_bytes() == b""


def test_read_jsonl_round_trip_and_blank_lines(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes('{"a": 1}\n\n  \n{"b": "é"}\n'.encode())
    assert sio.read_jsonl(p) == [{"a": 1}, {"b": "é"}]
    rows = [{"x": [1, 2], "y": None}, {"z": "line\nbreak"}]
    sio.write_jsonl(p, rows)
    assert sio.read_jsonl(str(p)) == rows


def test_read_jsonl_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(json.JSONDecodeError, match=r"bad\.jsonl, line 3: Expecting value"):
        sio.read_jsonl(p)


def test_write_csv_exact_bytes(tmp_path):
    p = tmp_path / "c" / "t.csv"
    sio.write_csv(p, [{"x": "a,b", "y": "line\nbreak", "z": "dropped"}, {"x": 1.5}], ["x", "y"])
    assert p.read_bytes() == b'x,y\r\n"a,b","line\nbreak"\r\n1.5,\r\n'


def test_atomic_write_text_and_bytes(tmp_path):
    p = tmp_path / "n" / "t.txt"
    sio.atomic_write_text(p, "a\nb\r\né")  # no newline translation
    assert p.read_bytes() == "a\nb\r\né".encode()
    sio.atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == []


def test_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        sio.atomic_write_text(tmp_path / "m.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_savefig(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    sio.atomic_savefig(fig, tmp_path / "f" / "x.png")
    sio.atomic_savefig(fig, tmp_path / "f" / "x.pdf")
    plt.close(fig)
    assert (tmp_path / "f" / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "f" / "x.pdf").read_bytes()[:5] == b"%PDF-"
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ atomicity


def test_failed_jsonl_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "rows.jsonl"
    sio.write_jsonl(p, [{"a": 1}])
    with pytest.raises(TypeError, match="Unserialisable"):
        sio.write_jsonl(p, [{"a": 2}, {"a": 3}, {"bad": Unserialisable()}])  # fails after two rows
    assert p.read_bytes() == b'{"a": 1}\n'
    assert leftovers(tmp_path) == []


def test_failed_first_write_leaves_nothing(tmp_path):
    def rows():
        yield {"a": 1}
        raise KeyboardInterrupt  # BaseException too

    with pytest.raises(KeyboardInterrupt):
        sio.write_jsonl(tmp_path / "new.jsonl", rows())
    with pytest.raises(TypeError):
        sio.write_json(tmp_path / "new.json", {"x": Unserialisable()})
    with pytest.raises(TypeError):
        sio.write_json(tmp_path / "new.json", {"x": {1, 2}})  # no str() fallback
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failed_savefig_keeps_the_old_file(tmp_path):
    class BadFig:
        def savefig(self, path, **kw):
            with open(path, "wb") as f:
                f.write(b"half")
            raise RuntimeError("renderer died")

    p = tmp_path / "x.png"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        sio.atomic_savefig(BadFig(), p)
    assert p.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_atomic_path_replaces_only_on_success(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("old")
    with pytest.raises(ValueError):
        with sio.atomic_path(p) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".tmp-")
            with open(tmp, "w") as f:
                f.write("half")
            raise ValueError
    assert p.read_text() == "old" and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ one implementation


def test_the_copies_are_gone():
    import seqmatch.data as data
    import seqmatch.data.sources as sources
    import seqmatch.evaluate.cli as ev  # the evaluation commands write through seqmatch.io

    assert data.read_jsonl is sio.read_jsonl and data.write_jsonl is sio.write_jsonl
    assert ev.read_jsonl is sio.read_jsonl and ev.write_json is sio.write_json
    assert ev.write_jsonl is sio.write_jsonl and ev.write_csv is sio.write_csv
    assert sources.write_json is data.write_json  # the sorted-keys meta.json writer


def test_data_write_json_sorts_keys(tmp_path):
    from seqmatch.data import write_json

    write_json(tmp_path / "meta.json", {"b": 1, "a": "é"})
    assert (tmp_path / "meta.json").read_bytes() == '{\n  "a": "é",\n  "b": 1\n}\n'.encode()


def test_import_is_light():
    code = ("import sys, seqmatch.io; "
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tablelib_writes_through_seqmatch_io(tmp_path):
    import importlib.util
    from pathlib import Path

    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "tablelib.py"
    spec = importlib.util.spec_from_file_location("tablelib_under_test", path)
    tablelib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tablelib)
    assert tablelib.atomic_write_text is sio.atomic_write_text and tablelib.atomic_savefig is sio.atomic_savefig
    df = pd.DataFrame({"a": [1, 2], "b": ["x,y", "é"], "c": [0.5, float("nan")]})
    tablelib.write_csv(df, tmp_path / "r" / "t.csv")
    assert (tmp_path / "r" / "t.csv").read_bytes() == 'a,b,c\n1,"x,y",0.5\n2,é,\n'.encode()
    tablelib.write_text(tmp_path / "r" / "s.md", "| a |\n")
    assert (tmp_path / "r" / "s.md").read_bytes() == b"| a |\n"
    with pytest.raises(TypeError):
        tablelib.write_text(tmp_path / "r" / "s.md", None)
    assert (tmp_path / "r" / "s.md").read_bytes() == b"| a |\n" and leftovers(tmp_path) == []
