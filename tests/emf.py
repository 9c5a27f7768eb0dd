"""Read the CloudWatch embedded-metric-format lines Powertools printed (captured by `capsys`)."""

from __future__ import annotations

import json
from typing import Any


def emitted(out: str, name: str) -> list[dict[str, Any]]:
    """Every EMF record in `out` that carries metric `name`: `{"value", "dimensions", "namespace"}`."""
    found: list[dict[str, Any]] = []
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            if any(metric["Name"] == name for metric in directive["Metrics"]):
                dims = {key: record[key] for group in directive["Dimensions"] for key in group}
                values = record[name]
                found.append(
                    {
                        "value": sum(values) if isinstance(values, list) else values,
                        "dimensions": dims,
                        "namespace": directive["Namespace"],
                    }
                )
    return found
