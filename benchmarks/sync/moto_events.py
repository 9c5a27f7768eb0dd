"""moto's PutEvents at the cost AWS has: the rules' input paths parsed once, not per event, and
the rules' target queues consumed as they are in a deployed stack.

moto 5.2.5 (`moto.events.utils.EventTemplateParser.parse`) builds every target's input with
`jsonpath_ng.ext.parse` of each input path (eight for a target without an InputTransformer),
and jsonpath_ng builds a new PLY parser for every call: about 5 ms a path, so one PutEvents of
10 events to a bus with three rules costs moto 1-2 s of CPU, against milliseconds on AWS. The
sync benchmark measures our sync, not that parser, so it (and only it) caches the parsed
expressions: a parsed path is an immutable tree, `find` does not change it, and every event still
goes through moto's own matching, templating and SQS delivery.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any


def install() -> None:
    """Cache `jsonpath_ng.ext.parse` for moto's event templating (moto imports it at call time)."""
    import jsonpath_ng.ext

    original = jsonpath_ng.ext.parse  # type: ignore[attr-defined]
    if getattr(original, "cache_info", None) is not None:
        return

    @functools.lru_cache(maxsize=256)
    def parse(path: str, *args: Any, **kwargs: Any) -> Any:
        return original(path, *args, **kwargs)

    jsonpath_ng.ext.parse = parse  # type: ignore[attr-defined]


@contextlib.contextmanager
def rule_queues_consumed(interval: float = 1.0) -> Iterator[None]:
    """Empty the SQS queues the buses' rules deliver to every `interval` seconds, as their
    consumers (categorize, calendar, automations functions) do in a deployed stack: Lambda's
    SQS pollers long-poll without pause, so a delivered message waits milliseconds, not seconds.

    moto 5.2.5 computes a queue's attributes, counting every message it holds, on each message
    EventBridge delivers to it (`Queue.attributes` in `send_message`, and for FIFO targets again
    in `_send_to_sqs_queue`), so with nobody consuming, each delivery costs more than the last
    (quadratic: 5,000 emails leave 15,000 messages behind). AWS's SendMessage does not depend on
    the queue's depth. Our sync never reads these queues. Even emptied once a second, the
    counting was 76% of moto's PutEvents CPU (py-spy, 300 PutEvents of 10 `email.received` to
    the template's bus in process, as fast as they go): 44.9 ms of CPU a PutEvents with the
    queues emptied every second, 15.9 ms every 50 ms, which bench_sync.py uses.
    """
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.events.models import events_backends
    from moto.sqs.models import sqs_backends

    stop = threading.Event()

    def drain() -> None:
        while not stop.wait(interval):
            for region, events in events_backends[DEFAULT_ACCOUNT_ID].items():
                sqs = sqs_backends[DEFAULT_ACCOUNT_ID][region]
                for bus in list(events.event_buses.values()):
                    for rule in list(bus.rules.values()):
                        for target in rule.targets:
                            name = str(target.get("Arn", "")).rsplit(":", 1)[-1]
                            queue = sqs.queues.get(name) if ":sqs:" in str(target.get("Arn")) else None
                            if queue is not None:
                                queue._messages = []  # what purge_queue does, without its 60-s rule

    thread = threading.Thread(target=drain, name="consume-rule-queues", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
