#!/usr/bin/env python
"""Train the local categorizer and write `layers/mailbridge/mailbridge/ai/weights.json`.

usage: .venv/bin/python scripts/train_categorizer.py [--corpus DIR] [--out FILE] [--folds N]

Learns three logistic regressions (scikit-learn, a dev-only dependency) on the features of
`mailbridge.ai.features`, hashed into 2**20 buckets:

- spam:   SpamAssassin public corpus, spam vs ham (easy_ham + hard_ham); message + form features;
- bulk:   SpamAssassin hard_ham (commercial, newsletters) vs Enron (person-to-person business);
          message text features only (the Enron export is plain text: form would learn that);
- action: Parakweet email-intent sentences, Yes (asks for an action) vs No.

Every file passes `mailbridge.ai.corpus.strip_artefacts` first (Enron's X-Folder/X-From/...,
JavaMail Message-IDs, SpamAssassin's X-Spam-* and SPAM: banner). Before fitting on everything,
each task is scored with stratified K-fold cross-validation (fixed seed), printed and stored in
the weights' `meta.cv`; the action threshold is the one with the best out-of-fold F1 on a coarse
grid (0.30-0.60), the two message tasks keep 0.5 with balanced class weights.

The corpus is `$MAILBRIDGE_CORPUS`, else `../shared/data`. Takes about a minute on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, precision_score, recall_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from mailbridge.ai import corpus, features, model  # noqa: E402

SEED = 0
# Regularization per task (inverse strength), chosen by cross-validation on the visible data.
C = {"spam": 30.0, "bulk": 10.0, "action": 10.0}
THRESHOLD_GRID = [round(0.30 + 0.05 * i, 2) for i in range(7)]


def matrix(vectors: list[dict[int, float]]) -> csr_matrix:
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for row, vector in enumerate(vectors):
        for col, value in vector.items():
            rows.append(row)
            cols.append(col)
            vals.append(value)
    return csr_matrix((vals, (rows, cols)), shape=(len(vectors), 1 << features.HASH_BITS))


def fit(task: str, x: csr_matrix, y: np.ndarray) -> LogisticRegression:
    balanced = task != "action"
    clf = LogisticRegression(
        C=C[task], max_iter=5000, class_weight="balanced" if balanced else None, random_state=SEED
    )
    return clf.fit(x, y)


def out_of_fold(task: str, x: csr_matrix, y: np.ndarray, folds: int) -> np.ndarray:
    probabilities = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(x, y):
        probabilities[test] = fit(task, x[train], y[train]).predict_proba(x[test])[:, 1]
    return probabilities


def figures(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "f1": round(float(f1_score(y, predicted)), 4),
        "precision": round(float(precision_score(y, predicted)), 4),
        "recall": round(float(recall_score(y, predicted)), 4),
    }


def export(clf: LogisticRegression, threshold: float, *, form: bool) -> dict[str, Any]:
    coef = clf.coef_[0]
    scale = float(np.abs(coef).max()) / 32767 or 1.0
    quantized = np.clip(np.rint(coef / scale), -32767, 32767).astype("<i2")
    return {
        "bias": round(float(clf.intercept_[0]), 6),
        "scale": scale,
        "threshold": threshold,
        "form": form,
        "nonzero": int(np.count_nonzero(quantized)),
        "weights": model.encode_weights(array("h", quantized.tolist())),
    }


def datasets(root: Path) -> dict[str, tuple[list[dict[int, float]], np.ndarray, dict[str, int]]]:
    """Hashed feature vectors and labels per task, with the counts that went in."""
    spam_files = corpus.spamassassin(root)
    enron_files = corpus.enron(root)
    parsed = {f.path: corpus.parse(f.path) for f in [*spam_files, *enron_files]}

    spam_x, spam_y = [], []
    for f in spam_files:
        message = parsed[f.path]
        if message is not None:
            spam_x.append(features.hashed(features.message_features(message, form=True)))
            spam_y.append(f.label == "spam")

    bulk_x, bulk_y = [], []
    for f in [*spam_files, *enron_files]:
        message = parsed[f.path]
        if message is None or f.subset not in ("hard_ham", "enron"):
            continue
        bulk_x.append(features.hashed(features.message_features(message)))
        bulk_y.append(f.subset == "hard_ham")

    sentences = corpus.parakweet(root)
    action_x = [features.hashed(features.sentence_features(text)) for text, _ in sentences]
    action_y = [label for _, label in sentences]

    def counts(y: list[bool]) -> dict[str, int]:
        return {"positive": sum(y), "negative": len(y) - sum(y)}

    return {
        "spam": (spam_x, np.array(spam_y), counts(spam_y)),
        "bulk": (bulk_x, np.array(bulk_y), counts(bulk_y)),
        "action": (action_x, np.array(action_y), counts(action_y)),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=model.WEIGHTS_PATH)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    root = args.corpus or corpus.corpus_root()
    if root is None or not (root / "labeled").is_dir():
        print("no corpus: set MAILBRIDGE_CORPUS or put ../shared/data beside the repo", file=sys.stderr)
        return 2

    started = time.monotonic()
    data = datasets(root)
    print(f"features ready in {time.monotonic() - started:.0f} s")
    tasks: dict[str, Any] = {}
    cv: dict[str, Any] = {}
    for task, (vectors, y, counts) in data.items():
        x = matrix(vectors)
        oof = out_of_fold(task, x, y, args.folds)
        if task == "action":
            threshold = max(THRESHOLD_GRID, key=lambda t: (f1_score(y, oof >= t), -abs(t - 0.5)))
        else:
            threshold = 0.5
        cv[task] = {**figures(y, oof >= threshold), "threshold": threshold, "folds": args.folds, **counts}
        print(f"{task}: {cv[task]}")
        tasks[task] = export(fit(task, x, y), threshold, form=task == "spam")

    document = {
        "format": model.FORMAT,
        "hash_bits": features.HASH_BITS,
        "meta": {
            "trained_by": "scripts/train_categorizer.py",
            "sklearn_c": C,
            "seed": SEED,
            "cv": cv,
        },
        "tasks": tasks,
    }
    args.out.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB) in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
