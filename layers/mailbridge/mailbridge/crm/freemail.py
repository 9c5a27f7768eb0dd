"""Free-mail (consumer mailbox) domains: never turned into CRM companies.

The list is the one maintained in the `email-inspector` package on PyPI (pinned in the layer's
requirements; ~16,000 domains: gmail, outlook/hotmail/live, yahoo, gmx, web.de, icloud,
protonmail, yandex, mail.ru, qq, 163 ...). Only its data file is read (not its module, which
also offers DNS lookups we do not want), once per cold start. `EXTRA` adds the few providers it
misses. The list errs on the side of "free" for some generic names (example.com, wordpress.com):
the cost of a false positive is only that no company is created automatically.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

PACKAGE, DATA = "email_inspector", "data/free_providers.json"

# Consumer providers missing from the upstream list (checked against email-inspector 0.1.4).
EXTRA = frozenset({"proton.me", "pm.me", "passmail.net", "duck.com"})


@lru_cache(maxsize=1)
def free_domains() -> frozenset[str]:
    data = json.loads(files(PACKAGE).joinpath(DATA).read_text(encoding="utf-8"))
    return frozenset(str(domain).lower() for domain in data) | EXTRA


def is_free_domain(domain: str) -> bool:
    return domain.strip().lower().rstrip(".") in free_domains()
