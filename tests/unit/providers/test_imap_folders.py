"""Sent-folder detection from LIST responses (no network)."""

from __future__ import annotations

import pytest

from mailbridge.providers.imap import Folder, SpecialUse, find_sent_folder, find_special_folder


def folder(name: str, *attributes: str, delimiter: str | None = "/") -> Folder:
    return Folder(name=name, delimiter=delimiter, attributes=frozenset(attributes))


def test_special_use_attribute_wins_over_names() -> None:
    # Given a server that marks a non-obvious folder \Sent and also has one named "Sent"
    folders = [folder("INBOX"), folder("Sent"), folder("Outbox Copies", "\\HasNoChildren", "\\Sent")]

    # When / Then the attribute decides
    found = find_sent_folder(folders)
    assert found is not None
    assert found.name == "Outbox Copies"


def test_attribute_match_is_case_insensitive() -> None:
    found = find_sent_folder([folder("Gesendet", "\\sent")])
    assert found is not None
    assert found.special_use is SpecialUse.SENT


@pytest.mark.parametrize(
    ("names", "delimiter", "expected"),
    [
        (["INBOX", "Sent Items", "Drafts"], "/", "Sent Items"),
        (["INBOX", "INBOX.Sent", "INBOX.Trash"], ".", "INBOX.Sent"),
        (["INBOX", "[Gmail]/Sent Mail"], "/", "[Gmail]/Sent Mail"),
        (["INBOX", "Gesendete Elemente"], "/", "Gesendete Elemente"),
        (["INBOX", "Sent Messages", "Sent"], "/", "Sent"),
        (["INBOX", "Archive/Sent", "Sent"], "/", "Sent"),
    ],
)
def test_falls_back_to_common_names(names: list[str], delimiter: str, expected: str) -> None:
    # Given a server without SPECIAL-USE
    folders = [folder(n, delimiter=delimiter) for n in names]

    # When / Then the best-known, shallowest name is chosen
    found = find_sent_folder(folders)
    assert found is not None
    assert found.name == expected


def test_unselectable_folders_are_ignored() -> None:
    folders = [folder("Sent", "\\Noselect", "\\Sent"), folder("Sent Items")]
    found = find_sent_folder(folders)
    assert found is not None
    assert found.name == "Sent Items"


def test_none_when_nothing_matches() -> None:
    assert find_sent_folder([folder("INBOX"), folder("Projects")]) is None


def test_other_special_uses() -> None:
    folders = [folder("Spam"), folder("Bin"), folder("Papers", "\\Archive")]
    assert (junk := find_special_folder(folders, SpecialUse.JUNK)) is not None
    assert junk.name == "Spam"
    assert (trash := find_special_folder(folders, SpecialUse.TRASH)) is not None
    assert trash.name == "Bin"
    assert (archive := find_special_folder(folders, SpecialUse.ARCHIVE)) is not None
    assert archive.name == "Papers"


def test_folder_without_delimiter_uses_whole_name() -> None:
    assert folder("Sent", delimiter=None).leaf == "Sent"
