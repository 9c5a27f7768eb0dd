"""What `q` searches: the stored word list and the query's words (mailbridge.search)."""

from __future__ import annotations

from mailbridge.search import MAX_SCAN_CHARS, MAX_SEARCH_CHARS, query_terms, search_text


def test_words_are_normalized_once_each_in_first_seen_order() -> None:
    # Given a subject, a sender and a body that repeat words in other cases and forms
    text = search_text(["Re: Projekt STRASSE", "Ana Müller ana@example.com", "Die Straße, das Projekt!"])
    # Then each word appears once, case folded (ß -> ss), punctuation gone
    assert text.split() == ["re", "projekt", "strasse", "ana", "müller", "example", "com", "die", "das"]


def test_a_word_deep_in_a_long_body_is_kept_while_repeats_cost_nothing() -> None:
    # Given a body of 50,000 characters where one word appears only at the end
    body = "quarterly numbers attached " * 2000 + "zeppelin"
    # Then the word list is short and still holds it
    text = search_text(["Numbers", None, body])
    assert "zeppelin" in text.split()
    assert len(text) < 100


def test_the_word_list_is_bounded_and_encoded_data_is_left_out() -> None:
    body = " ".join(f"word{n}" for n in range(10_000)) + " " + "A" * 500
    text = search_text(["subject first", body])
    assert len(text) <= MAX_SEARCH_CHARS
    assert text.startswith(" subject first word0 ")
    assert "a" * 500 not in text


def test_query_words_use_the_same_rules() -> None:
    assert query_terms("  Straße, PROJEKT projekt ") == [" strasse", " projekt"]
    assert query_terms("alice@example.com") == [" alice", " example", " com"]
    assert query_terms("!!!") == []
    assert query_terms(None) == []


def test_a_query_word_matches_the_words_it_begins() -> None:
    stored = search_text(["Project kickoff", "Dana dana@vendor.test"])
    assert all(term in stored for term in query_terms("KICK proj"))
    assert not all(term in stored for term in query_terms("off"))
    assert not all(term in stored for term in query_terms("ana"))


def test_text_past_the_scan_bound_is_not_read() -> None:
    # Given a body whose only word lies past the first MAX_SCAN_CHARS characters
    body = " " * MAX_SCAN_CHARS + "zeppelin"
    # Then the work per message stays bounded: the word is not looked at
    assert search_text(["subject", body]) == " subject"
