"""fastpath.dumps: the JSON of run.json and result.json, written without importing json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vestige.fastpath import _dumps, dumps, write_file

PLAIN = [
    {"id": "01ABC", "started": 1795708655.2025948, "pid": 4242, "parent": None, "ok": True},
    {"command": ["python", "train.py", "--lr", "0.1"], "nested": {"a": [1, [2, {"b": False}]]}},
    {"text": 'quotes " and \\ backslash\nnewline\ttab', "unicode": "naïve – 東京 🚀"},
    [],
    {},
    "",
    0,
    -17,
    2**70,
    1e-300,
]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_data_is_the_json_of_the_python_encoder(value: object) -> None:
    text = dumps(value)
    assert json.loads(text) == value
    assert text == _dumps(value)  # the C encoder and the fallback agree byte for byte
    assert text.isascii()  # (any byte of a run.json is ASCII: names and paths escaped)


def test_nan_and_infinity_become_null_not_invalid_json() -> None:
    value = {"loss": math.nan, "best": math.inf, "worst": -math.inf, "ok": 1.5}
    assert json.loads(dumps(value)) == {"loss": None, "best": None, "worst": None, "ok": 1.5}


def test_tuples_are_lists_and_odd_types_their_text() -> None:
    value = {"pair": (1, 2), "path": Path("/data/x.csv"), "set": {3}, 7: "int key"}
    assert json.loads(dumps(value)) == {
        "pair": [1, 2], "path": "/data/x.csv", "set": "{3}", "7": "int key",
    }  # fmt: skip


def test_write_file_replaces_the_whole_file(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    folder.mkdir()
    target = folder / "run.json"
    write_file(str(target), dumps({"long": "x" * 100_000}))
    write_file(str(target), dumps({"short": 1}))
    assert json.loads(target.read_text()) == {"short": 1}
    assert [p.name for p in folder.iterdir()] == ["run.json"]  # no temp file left
