"""Arithmetic data: every answer checked by an independent computation, filters, splits, seeds.

The references here parse the question text and compute the answer with Python ints in the given
base, exact rationals (fractions.Fraction) and trial-division factorization; nothing is taken
from mathematics_dataset or sympy.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest

from seqmatch import data as D

ADD_SUB_RE = re.compile(r"In base (\d+), what is (-?[0-9a-z]+) ([+-]) (-?[0-9a-z]+)\?")
MUL_TEMPLATES = [  # the nine templates of mathematics_dataset 1.0.1 arithmetic.mul, with N a number
    "N*N", "N * N", "Calculate N*N.", "Work out N * N.", "Multiply N and N.", "Product of N and N.",
    "What is the product of N and N?", "N times N", "What is N times N?",
]
NUM = r"-?\d+(?:\.\d+)?"
PRIME_RE = re.compile(r"(?:What are the prime factors of (\d+)\?|List the prime factors of (\d+)\.)")


def to_base(v: int, b: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if v == 0:
        return "0"
    sign, v = ("-", -v) if v < 0 else ("", v)
    out = []
    while v:
        v, r = divmod(v, b)
        out.append(digits[r])
    return sign + "".join(reversed(out))


def reference_add_sub(question: str) -> tuple[int, str]:
    m = ADD_SUB_RE.fullmatch(question)
    assert m, question
    b = int(m.group(1))
    p, q = int(m.group(2), b), int(m.group(4), b)
    return b, to_base(p + q if m.group(3) == "+" else p - q, b)


def reference_mul(question: str) -> Fraction:
    nums = re.findall(NUM, question)
    assert len(nums) == 2, question
    shape = re.sub(NUM, "N", question)
    assert shape in MUL_TEMPLATES, question
    return Fraction(nums[0]) * Fraction(nums[1])


def _primes_up_to(n: int) -> list[int]:
    sieve = bytearray([1]) * (n + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return [i for i, v in enumerate(sieve) if v]


PRIMES = _primes_up_to(110_000)  # enough for numbers below ~1.2e10 (entropy <= 10)


def distinct_prime_factors(n: int) -> list[int]:
    out = []
    for p in PRIMES:
        if p * p > n:
            break
        if n % p == 0:
            out.append(p)
            while n % p == 0:
                n //= p
    if n > 1:
        assert n < PRIMES[-1] ** 2, "number too large for the sieve"
        out.append(n)
    return out


def check_row(row: dict) -> None:
    q, a = row["question"], row["answer"]
    assert row["prompt"] == f"{q} Solution:"
    assert row["completion"] == f" {a}"
    assert row["source"].startswith("mathematics_dataset==1.0.1:")
    if row["task"] == "add_or_sub_in_base":
        b, expected = reference_add_sub(q)
        assert row["base"] == b <= 10
        assert a == expected
    elif row["task"] == "mul":
        assert row["base"] == 10
        assert re.fullmatch(NUM, a), a
        assert Fraction(a) == reference_mul(q)
    else:
        assert row["base"] == 10
        m = PRIME_RE.fullmatch(q)
        assert m, q
        n = int(m.group(1) or m.group(2))
        assert a == ", ".join(str(p) for p in distinct_prime_factors(n))


@pytest.mark.parametrize("task,entropy", [
    ("add_or_sub_in_base", None), ("add_or_sub_in_base", (2, 4)),
    ("mul", None), ("mul", (1, 3)),
    ("list_prime_factors", None), ("list_prime_factors", (3, 5)),
])
def test_every_answer_matches_independent_computation(task, entropy):
    train, test, meta = D.generate_arithmetic(task, n_train=300, n_test=60, seed=3, entropy=entropy)
    assert len(train) == 300 and len(test) == 60
    for row in train + test:
        assert row["task"] == task
        check_row(row)
    # disjoint by question string, and no repeats inside either split
    tq, sq = [r["question"] for r in train], [r["question"] for r in test]
    assert len(set(tq)) == len(tq) and len(set(sq)) == len(sq)
    assert not set(tq) & set(sq)
    assert meta["seed"] == 3 and meta["licenses"] and meta["source"] == train[0]["source"]


def test_bases_above_10_are_filtered_and_counted():
    train, test, meta = D.generate_arithmetic("add_or_sub_in_base", n_train=400, n_test=50, seed=0)
    bases = {r["base"] for r in train + test}
    assert bases <= set(range(2, 11))
    assert len(bases) >= 7  # all the allowed bases show up, not just base 10
    # the generator draws bases 2..16 uniformly, so about 6/15 of the draws are dropped
    assert meta["dropped"]["base"] > 0.2 * meta["draws"]
    # questions mention only digits valid in their base
    for r in train:
        b, _ = reference_add_sub(r["question"])
        assert all(int(ch, 36) < b for ch in re.findall(r"[0-9a-z]", r["question"].split("what is", 1)[1]))


def test_max_base_option_and_length_limits():
    train, _, _ = D.generate_arithmetic("add_or_sub_in_base", n_train=200, n_test=0, seed=1, max_base=16)
    assert max(r["base"] for r in train) > 10  # hex digits appear when allowed
    for r in train:
        assert len(r["question"]) <= 160 and len(r["answer"]) <= 30


def test_same_seed_same_data_different_seed_differs_global_rng_untouched():
    import random

    import numpy as np

    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    a = D.generate_arithmetic("mul", n_train=50, n_test=10, seed=7)
    after = (random.random(), np.random.rand())
    assert before == after  # the generator's seeding does not leak into the caller's RNGs
    b = D.generate_arithmetic("mul", n_train=50, n_test=10, seed=7)
    c = D.generate_arithmetic("mul", n_train=50, n_test=10, seed=8)
    assert a[0] == b[0] and a[1] == b[1]
    assert a[0] != c[0]


def test_test_set_does_not_depend_on_n_train():
    _, test_small, _ = D.generate_arithmetic("add_or_sub_in_base", n_train=10, n_test=30, seed=5)
    _, test_big, _ = D.generate_arithmetic("add_or_sub_in_base", n_train=200, n_test=30, seed=5)
    assert test_small == test_big


def test_difficulty_maps_to_entropy_range():
    assert D.resolve_entropy("mul") == (3.0, 10.0)  # default: the module's full training range
    assert D.resolve_entropy("mul", difficulty=0.0) == (3.0, 3.0)
    assert D.resolve_entropy("mul", difficulty=0.5) == (3.0, 6.5)
    assert D.resolve_entropy("mul", entropy=(1, 2)) == (1.0, 2.0)
    with pytest.raises(ValueError):
        D.resolve_entropy("mul", difficulty=1.5)
    easy, _, _ = D.generate_arithmetic("mul", n_train=200, n_test=0, seed=0, difficulty=0.0)
    hard, _, _ = D.generate_arithmetic("mul", n_train=200, n_test=0, seed=0, difficulty=1.0)
    digits = lambda rows: sum(len(re.sub(r"\D", "", r["question"])) for r in rows)  # noqa: E731
    assert digits(easy) < digits(hard)


def test_cli_writes_files_and_meta(tmp_path):
    out1, out2 = tmp_path / "a", tmp_path / "b"
    argv = ["arithmetic", "--task", "add_or_sub_in_base", "--n-train", "40", "--n-test", "10",
            "--seed", "2", "--entropy", "2", "4"]
    D.main(argv + ["--out-dir", str(out1)])
    D.main(argv + ["--out-dir", str(out2)])
    for name in ("train.jsonl", "test.jsonl", "meta.json"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    train = [json.loads(line) for line in (out1 / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (out1 / "test.jsonl").read_text().splitlines()]
    assert len(train) == 40 and len(test) == 10
    for r in train + test:
        check_row(r)
    meta = json.loads((out1 / "meta.json").read_text())
    assert meta["sizes"] == {"train": 40, "val": 0, "test": 10}
    assert meta["seed"] == 2 and meta["settings"]["entropy"] == [2.0, 4.0]
    assert meta["settings"]["max_base"] == 10
    assert "mathematics_dataset" in meta["source"]


def test_hub_loader_reads_math_dataset_layout(tmp_path):
    # math_dataset's column layout (question, answer; train and test splits), including the
    # b'...\n' byte-repr strings some hub versions of it hold.
    d = tmp_path / "math_dataset"
    d.mkdir()
    train_rows = [
        {"question": "b'In base 7, what is 5 + 4?\\n'", "answer": "b'12\\n'"},
        {"question": "In base 13, what is 9 + 4?", "answer": "10"},  # base > 10: dropped
        {"question": "In base 2, what is 1 - 11?", "answer": "-10"},
        {"question": "In base 10, what is 3 + 4?", "answer": "7"},
    ]
    test_rows = [
        {"question": "In base 2, what is 1 - 11?", "answer": "-10"},  # also in train: dropped
        {"question": "In base 9, what is -8 + 1?", "answer": "-7"},
    ]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    train, test, meta = D.load_hub_arithmetic("add_or_sub_in_base", hub_id=str(d), n_train=10, n_test=10, seed=0)
    assert sorted(r["question"] for r in train) == ["In base 10, what is 3 + 4?", "In base 2, what is 1 - 11?",
                                                    "In base 7, what is 5 + 4?"]
    assert [r["question"] for r in test] == ["In base 9, what is -8 + 1?"]
    for r in train + test:
        check_row({**r, "source": "mathematics_dataset==1.0.1:" + r["source"]})
    # local files have no hub config: the source names the files alone, the license is not stated
    assert meta["source"] == "local:math_dataset"
    assert meta["licenses"] == ["not stated (config key tasks.add_or_sub_in_base.data.license)"]


def test_hub_source_offline_fails_at_once_naming_it(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(D.HubUnavailableError) as e:
        D.load_hub_arithmetic("mul", n_train=5, n_test=5)
    msg = str(e.value)
    assert "deepmind/math_dataset" in msg and "config.yaml" in msg


def test_validation_rows_are_carved_from_training_and_the_test_split_does_not_move(tmp_path):
    argv = ["arithmetic", "--task", "add_or_sub_in_base", "--n-train", "40", "--n-test", "10",
            "--seed", "2", "--entropy", "2", "4"]
    D.main(argv + ["--out-dir", str(tmp_path / "plain")])
    D.main(argv + ["--out-dir", str(tmp_path / "val"), "--n-val", "12"])

    def read(d, name):
        return [json.loads(line) for line in (tmp_path / d / name).read_text().splitlines()]

    plain, train, val = read("plain", "train.jsonl"), read("val", "train.jsonl"), read("val", "val.jsonl")
    assert len(train) == 28 and len(val) == 12 and read("plain", "val.jsonl") == []
    # a partition of the same 40 rows, the training rows in their order
    assert sorted(map(json.dumps, train + val)) == sorted(map(json.dumps, plain))
    assert train == [r for r in plain if r not in val]
    assert read("val", "test.jsonl") == read("plain", "test.jsonl")
    meta = json.loads((tmp_path / "val" / "meta.json").read_text())
    assert meta["sizes"] == {"train": 28, "val": 12, "test": 10}
    with pytest.raises(D.DataSourceError, match="n_val .* = 40: not fewer than the 40 training rows"):
        D.main(argv + ["--out-dir", str(tmp_path / "bad"), "--n-val", "40"])
    assert not (tmp_path / "bad").exists()


def test_an_own_qa_task_with_its_name_base_and_provenance(tmp_path, monkeypatch):
    """`python -m seqmatch.data qa` on the user's files: rows of the task's name, the base the
    config gives (none without it), the user's source name and license in meta.json alone: the
    rows, which training reads, are byte-identical with or without them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydata").mkdir()
    rows = [{"question": f"reverse: {w}", "answer": w[::-1]} for w in ("abc", "hello", "tree", "moon", "kite")]
    (tmp_path / "mydata" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (tmp_path / "mydata" / "test.jsonl").write_text(json.dumps(rows[4]) + "\n")
    common = ["qa", "--task", "reverse", "--source", "hub", "--hub-id", "mydata", "--n-train", "4", "--n-test", "1"]
    plain = D.main([*common, "--out-dir", "plain"])
    named = D.main([*common, "--out-dir", "named", "--source-name", "word reversal", "--license", "CC0-1.0"])
    based = D.main([*common, "--out-dir", "based", "--base", "7"])
    assert (tmp_path / "plain" / "train.jsonl").read_bytes() == (tmp_path / "named" / "train.jsonl").read_bytes()
    train = [json.loads(x) for x in (tmp_path / "plain" / "train.jsonl").read_text().splitlines()]
    assert {r["task"] for r in train} == {"reverse"} and all("base" not in r for r in train)
    assert sorted(r["completion"] for r in train) == sorted([" cba", " olleh", " eert", " noom"])
    assert (plain["source"], plain["licenses"]) == ("local:mydata", ["not stated (config key tasks.reverse.data.license)"])
    assert (named["source"], named["origin"], named["licenses"]) == ("word reversal", "local:mydata", ["CC0-1.0"])
    based_rows = [json.loads(x) for x in (tmp_path / "based" / "train.jsonl").read_text().splitlines()]
    assert {r["base"] for r in based_rows} == {7} and based["settings"]["base"] == 7
