"""The local model: hashed-feature logistic regressions, scored in plain Python.

`weights.json` (written by `scripts/train_categorizer.py`, a few hundred KB) holds one linear
model per task:

- `spam`: spam vs ham (SpamAssassin public corpus), on `message_features(form=True)`;
- `bulk`: bulk / commercial mail vs person-to-person mail (SpamAssassin hard_ham vs Enron);
- `action`: a sentence asks the reader to do something (Parakweet email intent).

Each task stores `bias`, `threshold`, and its `2**hash_bits` weights as little-endian int16
(weight = value * `scale`), zlib-compressed and base64-encoded. Loading decodes three arrays
(a few milliseconds); scoring is a dot product over the message's features. No numpy, no
scikit-learn: `tests/unit/ai` imports this module with both blocked.

`probability = 1 / (1 + exp(-(bias + sum(w[hash(f)] * x_f))))` with `x` from `features.hashed`.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import zlib
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mailbridge.ai import features

WEIGHTS_PATH = Path(__file__).with_name("weights.json")
FORMAT = 1
TASKS = ("spam", "bulk", "action")
# Feature names in `reasons` are cut to this length (they may quote a word of the message).
MAX_FEATURE_NAME = 40


@dataclass(frozen=True)
class Score:
    """A model's answer: the probability, whether it passes the task's threshold, and the
    features that pushed hardest towards the answer (names, strongest first)."""

    task: str
    probability: float
    positive: bool
    top_features: tuple[str, ...]


@dataclass(frozen=True)
class LinearModel:
    task: str
    bias: float
    scale: float
    threshold: float
    form: bool
    weights: array[int]

    def score(self, named: dict[str, float], top: int = 3) -> Score:
        vector = features.hashed(named)
        total = self.bias
        weights = self.weights
        scale = self.scale
        for index, value in vector.items():
            total += weights[index] * scale * value
        probability = _sigmoid(total)
        positive = probability >= self.threshold
        return Score(self.task, probability, positive, self._top(named, vector, positive, top))

    def _top(
        self, named: dict[str, float], vector: dict[int, float], positive: bool, top: int
    ) -> tuple[str, ...]:
        if top <= 0:
            return ()
        sign = 1 if positive else -1
        pushes: list[tuple[float, str]] = []
        for name in named:
            index = features.hash_name(name)
            push = sign * self.weights[index] * self.scale * vector.get(index, 0.0)
            if push > 0:
                pushes.append((push, name))
        pushes.sort(key=lambda item: (-item[0], item[1]))
        return tuple(name[:MAX_FEATURE_NAME] for _, name in pushes[:top])


@dataclass(frozen=True)
class Weights:
    hash_bits: int
    models: dict[str, LinearModel]
    meta: dict[str, object]

    def model(self, task: str) -> LinearModel:
        return self.models[task]


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


def decode_weights(encoded: str) -> array[int]:
    values = array("h")
    values.frombytes(zlib.decompress(base64.b64decode(encoded)))
    if sys.byteorder != "little":
        values.byteswap()
    return values


def encode_weights(values: array[int]) -> str:
    """The inverse of `decode_weights` (used by the training script)."""
    data = array("h", values)
    if sys.byteorder != "little":
        data.byteswap()
    return base64.b64encode(zlib.compress(data.tobytes(), 9)).decode("ascii")


def parse_weights(document: dict[str, object]) -> Weights:
    """A `Weights` from the JSON document; ValueError when it is not the format we score."""
    if document.get("format") != FORMAT:
        raise ValueError(f"weights format {document.get('format')!r}, expected {FORMAT}")
    if document.get("hash_bits") != features.HASH_BITS:
        raise ValueError("weights were trained with another number of hash bits")
    tasks = document.get("tasks")
    if not isinstance(tasks, dict):
        raise ValueError("weights without tasks")
    models: dict[str, LinearModel] = {}
    for task in TASKS:
        entry = tasks.get(task)
        if not isinstance(entry, dict):
            raise ValueError(f"weights without the {task} task")
        values = decode_weights(str(entry["weights"]))
        if len(values) != 1 << features.HASH_BITS:
            raise ValueError(f"{task}: {len(values)} weights, expected {1 << features.HASH_BITS}")
        models[task] = LinearModel(
            task=task,
            bias=float(entry["bias"]),
            scale=float(entry["scale"]),
            threshold=float(entry["threshold"]),
            form=bool(entry.get("form", False)),
            weights=values,
        )
    meta = document.get("meta")
    return Weights(features.HASH_BITS, models, meta if isinstance(meta, dict) else {})


@lru_cache(maxsize=4)
def load_weights(path: Path = WEIGHTS_PATH) -> Weights:
    """The weights file, read once per process."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError("weights file is not a JSON object")
    return parse_weights(document)
