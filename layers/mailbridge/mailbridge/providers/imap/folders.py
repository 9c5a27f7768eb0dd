"""Finding special folders in a LIST response: SPECIAL-USE first, then well-known names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mailbridge.providers.imap.models import Folder, SpecialUse

# Leaf names servers without SPECIAL-USE commonly use, lower-cased, most common first.
FALLBACK_NAMES: dict[SpecialUse, tuple[str, ...]] = {
    SpecialUse.SENT: (
        "sent",
        "sent items",
        "sent messages",
        "sent mail",
        "sent-mail",
        "gesendet",
        "gesendete elemente",
        "gesendete objekte",
        "envoyés",
        "éléments envoyés",
        "enviados",
        "elementos enviados",
        "posta inviata",
        "inviati",
        "verzonden items",
        "skickat",
    ),
    SpecialUse.DRAFTS: ("drafts", "draft", "entwürfe", "brouillons", "borradores", "bozze"),
    SpecialUse.TRASH: ("trash", "deleted items", "deleted messages", "bin", "papierkorb", "corbeille"),
    SpecialUse.JUNK: ("junk", "spam", "junk e-mail", "junk email", "bulk mail"),
    SpecialUse.ARCHIVE: ("archive", "archives", "archiv"),
}


def find_special_folder(folders: Iterable[Folder], use: SpecialUse) -> Folder | None:
    """The selectable folder marked `use`; else the best well-known name match, or None."""
    candidates: Sequence[Folder] = [f for f in folders if f.selectable]
    for folder in candidates:
        if folder.special_use is use:
            return folder
    names = FALLBACK_NAMES.get(use, ())
    ranked = [
        (names.index(folder.leaf.lower()), folder.name.count(folder.delimiter or "\0"), folder)
        for folder in candidates
        if folder.leaf.lower() in names
    ]
    if not ranked:
        return None
    # Best name first, then the shallowest (INBOX/Sent before INBOX/Archive/Sent).
    return min(ranked, key=lambda item: (item[0], item[1]))[2]


def find_sent_folder(folders: Iterable[Folder]) -> Folder | None:
    return find_special_folder(folders, SpecialUse.SENT)
