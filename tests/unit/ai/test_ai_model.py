"""The scorer: plain Python, deterministic, and strict about the weights it accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from mailbridge.ai import features, model

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "ai" / "sales_inquiry.eml"

# Imports numpy, scipy or sklearn would fail with ModuleNotFoundError, then categorizes a file.
BLOCKED_RUN = """
import json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"numpy", "scipy", "sklearn"}:
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Block())
from mailbridge.ai.categorize import categorize
from mailbridge.mime import normalize
result = categorize(normalize(open(sys.argv[1], "rb").read()).message)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"numpy", "scipy", "sklearn"})
print(json.dumps({"result": result.model_dump(mode="json"), "loaded": loaded}))
"""


def test_scorer_runs_with_numpy_and_sklearn_blocked():
    # Given a Python where numpy, scipy and scikit-learn cannot be imported
    env_path = str(ROOT / "layers" / "mailbridge")
    # When a message is categorized there
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(FIXTURE)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    record = json.loads(out.stdout)
    # Then it works, loaded none of them, and gives the same answer as this process
    from mailbridge.ai.categorize import categorize
    from mailbridge.mime import normalize

    here = categorize(normalize(FIXTURE.read_bytes()).message).model_dump(mode="json")
    assert record["loaded"] == []
    assert record["result"] == here


def test_weights_round_trip_through_the_encoding():
    # Given some int16 weights
    values = array("h", [0, 1, -1, 32767, -32767, 123])
    # When encoded and decoded
    decoded = model.decode_weights(model.encode_weights(values))
    # Then they are unchanged
    assert decoded == values


def test_shipped_weights_cover_every_task():
    # When the shipped weights load
    weights = model.load_weights()
    # Then each task has a full hashed vector and a threshold in (0, 1)
    for task in model.TASKS:
        entry = weights.model(task)
        assert len(entry.weights) == 1 << features.HASH_BITS
        assert 0.0 < entry.threshold < 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 99}, "format"),
        ({"hash_bits": 12}, "hash bits"),
        ({"tasks": {}}, "task"),
    ],
)
def test_weights_of_another_format_are_refused(change, message):
    # Given the shipped document with one thing changed
    document = json.loads(model.WEIGHTS_PATH.read_text())
    document.update(change)
    # Then parsing refuses it with a ValueError naming the problem
    with pytest.raises(ValueError, match=message):
        model.parse_weights(document)


def test_wrong_length_weights_are_refused():
    # Given a task whose weight vector is too short
    document = json.loads(model.WEIGHTS_PATH.read_text())
    document["tasks"]["spam"]["weights"] = model.encode_weights(array("h", [0] * 10))
    # Then parsing refuses it
    with pytest.raises(ValueError, match="spam"):
        model.parse_weights(document)


def test_scores_are_probabilities_even_for_extreme_sums():
    # Given a model whose weights push far past float range of exp()
    ones = array("h", [32767] * (1 << features.HASH_BITS))
    minus = array("h", [-32767] * (1 << features.HASH_BITS))
    huge = model.LinearModel("spam", bias=5000.0, scale=1.0, threshold=0.5, form=False, weights=ones)
    tiny = model.LinearModel("spam", bias=-5000.0, scale=1.0, threshold=0.5, form=False, weights=minus)
    # When scored
    high = huge.score({"w:x": 1.0})
    low = tiny.score({"w:y": 1.0})
    # Then the answers are 1 and (nearly) 0, not an OverflowError
    assert high.probability == pytest.approx(1.0)
    assert high.positive
    assert low.probability < 1e-6
    assert not low.positive


def test_hashing_is_stable_across_processes():
    # Given a feature name
    name = "w:invoice"
    # When hashed here and in a fresh interpreter (str hash() would differ per process)
    out = subprocess.run(
        [sys.executable, "-c", f"from mailbridge.ai.features import hash_name; print(hash_name({name!r}))"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "layers" / "mailbridge"), "PATH": "/usr/bin:/bin"},
    )
    # Then the bucket is the same
    assert int(out.stdout) == features.hash_name(name)
