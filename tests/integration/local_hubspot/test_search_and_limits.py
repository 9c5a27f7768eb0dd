"""Search paging on lastmodifieddate, search limits, and the 10-second / daily rate limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from tests.integration.local_hubspot.conftest import REDIRECT, Api, install

SEARCH = "/crm/v3/objects/contacts/search"


def test_search_pages_changes_since_a_watermark(hubspot: HubSpotDouble, api: Api, clock: ManualClock):
    # Given 250 contacts, one changed per second
    for i in range(250):
        hubspot.create("contacts", email=f"p{i}@example.com", lastname=f"L{i:03d}")
        clock.advance(1)
    watermark = int((clock.now() - timedelta(seconds=150)).timestamp() * 1000)
    # When the client searches lastmodifieddate >= watermark, sorted ascending, 100 at a time
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(watermark)}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "lastmodifieddate"],
        "limit": 100,
    }
    names: list[str] = []
    page = api.post(SEARCH, body).json()
    total = page["total"]
    while True:
        names += [r["properties"]["email"] for r in page["results"]]
        if "paging" not in page:
            break
        page = api.post(SEARCH, body | {"after": page["paging"]["next"]["after"]}).json()
        clock.advance(1)  # stay under five searches a second
    # Then it gets the last 150 changes, oldest first, across pages
    assert total == 150
    assert len(names) == 150
    assert names[0] == "p100@example.com"
    assert names[-1] == "p249@example.com"
    equal = api.post(
        SEARCH,
        {
            "filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "P7@EXAMPLE.COM"}]}
            ]
        },
    )
    assert [r["properties"]["email"] for r in equal.json()["results"]] == ["p7@example.com"]


def test_search_limits(api: Api, clock: ManualClock):
    # When a search pages past 10,000 results, uses six filter groups, or exceeds 200 per page
    deep = api.post(SEARCH, {"after": "9950", "limit": 100})
    groups = api.post(
        SEARCH, {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6}
    )
    wide = api.post(SEARCH, {"limit": 201})
    # Then each is a 400 VALIDATION_ERROR
    for answer in (deep, groups, wide):
        assert (answer.status_code, answer.json()["category"]) == (400, "VALIDATION_ERROR")
    # When six searches go out in the same second
    clock.advance(1)
    answers = [api.post(SEARCH, {}) for _ in range(6)]
    # Then the sixth is a 429 from the search limit, without rate-limit headers
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[5].json()["policyName"] == "SECONDLY"
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in answers[0].headers)


def test_ten_second_limit_then_recovery(hubspot: HubSpotDouble, api: Api, clock: ManualClock):
    # Given a public app's 110 requests per 10 seconds
    answers = [api.get("/crm/v3/objects/contacts") for _ in range(111)]
    # Then the headers count down and the 111th is a 429 with HubSpot's body
    assert answers[0].headers["x-hubspot-ratelimit-max"] == "110"
    assert answers[0].headers["x-hubspot-ratelimit-interval-milliseconds"] == "10000"
    assert answers[0].headers["x-hubspot-ratelimit-remaining"] == "109"
    assert "x-hubspot-ratelimit-daily" not in answers[0].headers  # OAuth apps have no daily limit
    limited = answers[110]
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.json()["errorType"] == "RATE_LIMIT"
    assert limited.headers["x-hubspot-ratelimit-remaining"] == "0"
    # When ten seconds pass
    clock.advance(10)
    # Then requests go through again
    assert api.get("/crm/v3/objects/contacts").status_code == 200


def test_private_app_daily_limit_resets_at_midnight():
    # Given a private app allowed 3 requests a day, late in the day
    clock = ManualClock(datetime(2030, 1, 1, 23, 59, 0, tzinfo=UTC))
    with HubSpotDouble(clock=clock, app_type="private", daily_limit=3) as hubspot:
        app: App = hubspot.register_app([REDIRECT])
        api = Api(hubspot, install(hubspot, app)["access_token"])
        # When four calls go out
        answers = [api.get("/crm/v3/objects/contacts") for _ in range(4)]
        # Then the daily headers count down and the fourth is refused as DAILY
        assert answers[0].headers["x-hubspot-ratelimit-daily"] == "3"
        assert answers[2].headers["x-hubspot-ratelimit-daily-remaining"] == "0"
        assert answers[3].status_code == 429
        assert answers[3].json()["policyName"] == "DAILY"
        # When midnight passes
        clock.advance(61)
        # Then the day's allowance is back
        assert api.get("/crm/v3/objects/contacts").headers["x-hubspot-ratelimit-daily-remaining"] == "2"
