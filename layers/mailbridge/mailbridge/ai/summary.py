"""Extractive summaries: sentences picked from the texts themselves, never written anew.

Method: SumBasic (Nenkova and Vanderwende, "The impact of frequency on summarization", 2005).
1. The texts are split into sentences (at `.`, `!` or `?` followed by a space, and at line
   breaks); greetings and sign-offs ("Hi Ada,", "Best regards,"), quoted lines (`>`) and
   sentences of fewer than `MIN_WORDS` words are left out.
2. Each content word (lower-cased, three letters or more, not a stop word) gets the probability
   `p(w) = count(w) / all content words`.
3. A sentence scores the mean `p(w)` of its content words; the best is picked (ties: the earlier),
   then `p(w)` of its words is squared so that the next pick favours words not yet covered.
4. Steps 3 repeats until `limit` sentences are picked; they are returned in the order of the texts.

Plain Python over at most `MAX_SENTENCES` sentences (the newest texts first: callers pass them
newest first and the summary keeps the texts' order as given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_WORDS = 4
MAX_SENTENCE_CHARS = 300
MAX_SENTENCES = 400

_SPLIT = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")
_WORD = re.compile(r"[a-z][a-z0-9']{2,}")
_SKIP = re.compile(
    r"^(?:>|(?:hi|hello|hey|dear|thanks|thank you|best|regards|best regards|kind regards|cheers|"
    r"sincerely)\b[^.!?]{0,40}[,!]?$)",
    re.I,
)
_STOP = (
    "the and for are but not you all any can had her was one our out "
    "has him his how its may new now own see two who did get let put "
    "say she too use that with have this will your from they know want been good "
    "much some time very when come here just like long make many more only over such "
    "take than them well were what would there their about which could other these into also "
    "should then those while after being where does doing shall might must every again please thanks "
    "hello dear regards best"
)
STOP_WORDS = frozenset(_STOP.split())


@dataclass(frozen=True)
class Sentence:
    text: str
    source_id: str
    """The email, activity or event the sentence was taken from."""


def sentences(text: str, source_id: str) -> list[Sentence]:
    """The summarizable sentences of one text (see step 1)."""
    out: list[Sentence] = []
    for raw in _SPLIT.split(text or ""):
        piece = raw.strip()
        if not piece or _SKIP.match(piece) or len(piece.split()) < MIN_WORDS:
            continue
        out.append(Sentence(piece[:MAX_SENTENCE_CHARS], source_id))
    return out


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def summarize(texts: list[tuple[str, str]], limit: int = 3) -> list[Sentence]:
    """Up to `limit` sentences of `texts` (`(text, source_id)` pairs) by SumBasic, in the texts'
    order (see the module docstring)."""
    pool = [s for text, source in texts for s in sentences(text, source)][:MAX_SENTENCES]
    words = [_words(s.text) for s in pool]
    total = sum(len(w) for w in words)
    if not total:
        return []
    p: dict[str, float] = {}
    for sentence_words in words:
        for word in sentence_words:
            p[word] = p.get(word, 0.0) + 1.0 / total
    picked: list[int] = []
    seen_texts: set[str] = set()
    while len(picked) < limit:
        best, best_score = -1, 0.0
        for i, sentence_words in enumerate(words):
            if i in picked or not sentence_words or pool[i].text.lower() in seen_texts:
                continue
            score = sum(p[w] for w in sentence_words) / len(sentence_words)
            if score > best_score:
                best, best_score = i, score
        if best < 0:
            break
        picked.append(best)
        seen_texts.add(pool[best].text.lower())
        for word in set(words[best]):
            p[word] = p[word] ** 2
    return [pool[i] for i in sorted(picked)]
