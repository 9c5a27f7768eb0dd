"""The generated route map must match the routers, or lazily loaded routes would 404."""

from __future__ import annotations

from mailbridge.api import route_map, routes


def test_the_route_map_is_up_to_date() -> None:
    expected = routes.collect()
    assert expected == route_map.ROUTE_MODULES, (
        "regenerate: PYTHONPATH=layers/mailbridge python -m mailbridge.api.routes "
        "> layers/mailbridge/mailbridge/api/route_map.py"
    )
