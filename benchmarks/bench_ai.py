"""`make bench` (ai): the categorizer measured on the visible labelled data, beside a baseline.

Cross-validated (stratified 5 folds, seed 0) on `$MAILBRIDGE_CORPUS` or `../shared/data`:
each fold trains our hashed-feature model (scripts/train_categorizer.py's recipe) and a
TF-IDF + logistic-regression baseline (scikit-learn defaults, sublinear tf) on the same files,
and scores the held-out fold. Figures (printed, never asserted):

- spam f1: SpamAssassin spam vs ham, the spam model alone;
- bulk f1: SpamAssassin hard_ham vs Enron, `is_bulk` as categorize decides it (header rules,
  then the bulk model trained on the other folds);
- action f1: Parakweet sentences, the action model at the trained threshold;
- automated recall: the DSNs, reports and auto-replies of the MIME corpus
  (`corpus.AUTOMATED_MIME`), `is_automated` from the shipped categorizer (rules, no training);
  the baseline is TF-IDF + LR cross-validated on the whole MIME corpus with those labels;
- categorize emails/s: `categorize()` on already normalized messages, one core, shipped weights.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, recall_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from train_categorizer import fit, matrix  # noqa: E402

from mailbridge.ai import corpus, features, rules  # noqa: E402
from mailbridge.ai.categorize import categorize  # noqa: E402
from mailbridge.ai.model import load_weights  # noqa: E402
from mailbridge.mime import MimeError, normalize  # noqa: E402

FOLDS = 5
SEED = 0


def folds(y):
    return StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y)


def baseline_predictions(texts, y):
    predicted = np.zeros(len(y), dtype=bool)
    for train, test in folds(y):
        clf = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))
        clf.fit([texts[i] for i in train], y[train])
        predicted[test] = clf.predict([texts[i] for i in test])
    return predicted


def text_of(message):
    return f"{message.subject or ''}\n{message.text_body or ''}"


def ours(task, vectors, y, threshold, header_positive=None):
    x = matrix(vectors)
    predicted = np.zeros(len(y), dtype=bool)
    for train, test in folds(y):
        clf = fit(task, x[train], y[train])
        predicted[test] = clf.predict_proba(x[test])[:, 1] >= threshold
    if header_positive is not None:
        predicted |= header_positive
    return predicted


def line(name, value, baseline):
    print(f"ai {name}: {value:.4f}")
    print(f"ai {name} baseline: {baseline:.4f}")


def main() -> int:
    root = corpus.corpus_root()
    if root is None:
        print("ai: no corpus (set MAILBRIDGE_CORPUS or put ../shared/data beside the repo); skipped")
        return 0
    weights = load_weights()
    started = time.monotonic()
    sa = corpus.spamassassin(root)
    en = corpus.enron(root)
    maybe = {f.path: corpus.parse(f.path) for f in [*sa, *en]}
    parsed = {path: message for path, message in maybe.items() if message is not None}
    print(f"   parsed {len(maybe)} labelled files in {time.monotonic() - started:.0f} s")

    spam_files = [f for f in sa if f.path in parsed]
    y = np.array([f.label == "spam" for f in spam_files])
    messages = [parsed[f.path] for f in spam_files]
    vectors = [features.hashed(features.message_features(m, form=True)) for m in messages]
    spam = f1_score(y, ours("spam", vectors, y, weights.model("spam").threshold))
    line("spam f1", spam, f1_score(y, baseline_predictions([text_of(m) for m in messages], y)))

    bulk_files = [f for f in [*sa, *en] if f.subset in ("hard_ham", "enron") and f.path in parsed]
    y = np.array([f.subset == "hard_ham" for f in bulk_files])
    messages = [parsed[f.path] for f in bulk_files]
    vectors = [features.hashed(features.message_features(m)) for m in messages]
    headers = np.array([any(e.is_bulk for e in rules.header_evidence(m)) for m in messages])
    bulk = f1_score(y, ours("bulk", vectors, y, weights.model("bulk").threshold, headers))
    bulk_model_only = f1_score(y, ours("bulk", vectors, y, weights.model("bulk").threshold))
    line("bulk f1", bulk, f1_score(y, baseline_predictions([text_of(m) for m in messages], y)))
    print(f"   (bulk f1, model alone without header rules: {bulk_model_only:.4f})")

    sentences = corpus.parakweet(root)
    y = np.array([label for _, label in sentences])
    vectors = [features.hashed(features.sentence_features(text)) for text, _ in sentences]
    action = f1_score(y, ours("action", vectors, y, weights.model("action").threshold))
    line("action f1", action, f1_score(y, baseline_predictions([t for t, _ in sentences], y)))

    mime_files = sorted((root / "mime").rglob("*.eml"))
    automated_set = {p.resolve() for p in corpus.automated_mime(root)}
    mime_messages, labels = [], []
    for path in mime_files:
        try:
            mime_messages.append(normalize(path.read_bytes()).message)
        except MimeError:
            continue
        labels.append(path.resolve() in automated_set)
    y = np.array(labels)
    predicted = np.array([categorize(m, weights=weights).is_automated for m in mime_messages])
    recall = recall_score(y, predicted)
    flagged_others = int(predicted[~y].sum())
    line(
        "automated recall",
        recall,
        recall_score(y, baseline_predictions([text_of(m) for m in mime_messages], y)),
    )
    print(f"   ({int(y.sum())} automated messages; {flagged_others} of the other {int((~y).sum())} flagged)")

    sample = list(parsed.values())
    for message in sample[:20]:
        categorize(message, weights=weights)
    started = time.perf_counter()
    for message in sample:
        categorize(message, weights=weights)
    rate = len(sample) / (time.perf_counter() - started)
    print(f"ai categorize emails/s: {rate:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
