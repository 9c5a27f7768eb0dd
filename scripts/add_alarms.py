"""Give a new function (and its dead-letter queue) the alarms and dashboard lines every function has.

    .venv/bin/python scripts/add_alarms.py CrmSync      # CrmSyncFunction, CrmSyncDeadLetterQueue

template.yaml spells the alarms and the OperationsDashboard out per function (CloudFormation has
no loop without the LanguageExtensions transform, which the local runner does not read); this
copies the MatchFunction's set under the new name, in place. tests/unit/test_alarms.py fails for a
function or DLQ without them. Run it once per new function; it refuses to add a set twice.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
MODEL = "Match"
ALARMS = ("DeadLetterQueueAlarm", "FunctionErrorsAlarm", "FunctionThrottlesAlarm")
ENTRY = re.compile(  # one metric line of a dashboard widget naming the model's queue or function
    r'(?P<indent>[ ]*)\[\n(?:[ ]*"[^"\n]*",\n){3}'
    r'[ ]*"\$\{Match(?:DeadLetterQueue\.QueueName|Function)\}"\n[ ]*\]'
)


def add(text: str, name: str, *, with_queue: bool) -> str:
    if f"\n  {name}FunctionErrorsAlarm:\n" in text:
        raise SystemExit(f"{name} already has its alarms")
    for suffix in ALARMS:
        if suffix.startswith("DeadLetter") and not with_queue:
            continue
        start = text.index(f"\n  {MODEL}{suffix}:\n") + 1
        end = text.index("\n\n", start) + 2
        text = text[:end] + text[start:end].replace(MODEL, name) + text[end:]
    out, pos = [], 0
    for match in ENTRY.finditer(text):
        entry = match.group(0)
        if "DeadLetterQueue" in entry and not with_queue:
            continue
        out += [text[pos : match.start()], entry.replace("${" + MODEL, "${" + name) + ",\n" + entry]
        pos = match.end()
    return "".join([*out, text[pos:]])


def main(argv: list[str]) -> None:
    if not argv or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", argv[0]):
        raise SystemExit(__doc__)
    name = argv[0]
    text = TEMPLATE.read_text()
    with_queue = f"\n  {name}DeadLetterQueue:\n" in text
    TEMPLATE.write_text(add(text, name, with_queue=with_queue))
    print(
        f"{name}: alarms and dashboard lines added" + (" (with its dead-letter queue)" if with_queue else "")
    )


if __name__ == "__main__":
    main(sys.argv[1:])
