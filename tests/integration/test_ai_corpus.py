"""The shipped categorizer on the labelled corpora (corpus tests: skipped without ../shared/data,
failures under CI=true like the others).

Nothing is retrained here:
- automated/bounce recall: the DSNs, reports and auto-replies of the MIME corpus
  (`corpus.AUTOMATED_MIME`) must come out `is_automated` (target >= 0.99);
- the cross-validated figures the training script recorded in `weights.json` (`meta.cv`,
  stratified 5 folds, seed 0) must stay above their floors;
- on a fixed fold (every fifth labelled file, sorted) the shipped weights must still reproduce
  what they were trained to do: this fails when features.py changes without retraining.
"""

from __future__ import annotations

import pytest

from mailbridge.ai import corpus
from mailbridge.ai.categorize import categorize, sentence_action
from mailbridge.ai.model import load_weights
from mailbridge.mime import normalize

pytestmark = pytest.mark.corpus

ROOT = corpus.corpus_root()
needs_corpus = pytest.mark.skipif(ROOT is None, reason="no ../shared/data (or $MAILBRIDGE_CORPUS)")

# Held-out targets (issue 14): spam 0.97, bulk 0.97, action 0.80, automated recall 0.99.
# Floors for the recorded CV figures: action and bulk keep a margin above what we measured
# falls short of; spam's CV F1 (0.92) is below the 0.97 target on this data (see README of the
# ai package / the bench), so its floor guards against regressions, not the target.
CV_FLOORS = {"spam": 0.90, "bulk": 0.95, "action": 0.81}


def f1(truth: list[bool], predicted: list[bool]) -> float:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@needs_corpus
def test_automated_and_bounces_are_recalled():
    # Given the MIME corpus's delivery reports, read receipts, abuse reports and auto-replies
    assert ROOT is not None
    files = corpus.automated_mime(ROOT)
    assert len(files) >= 30
    # When each is normalized and categorized
    missed = [p.name for p in files if not categorize(normalize(p.read_bytes()).message).is_automated]
    # Then at least 99% are automated (today: all of them)
    assert 1 - len(missed) / len(files) >= 0.99, missed


@needs_corpus
def test_recorded_cross_validation_stays_above_floors():
    # Given the figures the training script measured by stratified 5-fold CV
    cv = load_weights().meta["cv"]
    assert isinstance(cv, dict)
    # Then each task's F1 is above its floor
    for task, floor in CV_FLOORS.items():
        assert cv[task]["f1"] >= floor, (task, cv[task])


@needs_corpus
def test_shipped_weights_reproduce_their_training_on_a_fixed_fold():
    # Given every fifth SpamAssassin and Enron file and Parakweet sentence (a fixed split)
    assert ROOT is not None
    sa = sorted(corpus.spamassassin(ROOT), key=lambda f: str(f.path))[::5]
    enron = sorted(corpus.enron(ROOT), key=lambda f: str(f.path))[::5]
    sentences = corpus.parakweet(ROOT)[::5]
    spam_truth, spam_pred, bulk_truth, bulk_pred = [], [], [], []
    # When the shipped categorizer scores them
    for item in [*sa, *enron]:
        message = corpus.parse(item.path)
        if message is None:
            continue
        result = categorize(message)
        if item.subset != "enron":
            spam_truth.append(item.label == "spam")
            spam_pred.append(result.is_spam)
        if item.subset in ("hard_ham", "enron"):
            bulk_truth.append(item.subset == "hard_ham")
            bulk_pred.append(result.is_bulk)
    action_pred = [sentence_action(text).positive for text, _ in sentences]
    # Then they still separate the classes they were trained on
    assert f1(spam_truth, spam_pred) >= 0.97
    assert f1(bulk_truth, bulk_pred) >= 0.97
    assert f1([label for _, label in sentences], action_pred) >= 0.85
