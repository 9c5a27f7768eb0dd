"""The double's /__double__ control API over plain HTTP, and the command-line seeding."""

from __future__ import annotations

import base64

import httpx

from local.microsoft.__main__ import seed_demo
from tests.integration.local_microsoft.conftest import USER, Graph, connect, refresh, rfc5322


def test_control_api_sets_up_an_app_and_a_mailbox_and_acts_as_the_user(ms, http):
    # Given the control API on the double's plain-HTTP side
    control = ms.urls()["control"]
    assert control is not None
    assert control.startswith("http://")
    with httpx.Client(base_url=control, timeout=10) as c:
        # When an app, a user and a message are created, and the user reads and moves it
        app = c.post("/apps", json={"redirect_uris": ["http://127.0.0.1:3000/cb"]}).json()
        user = c.post("/users", json={"address": USER, "name": "Ada Lovelace"}).json()
        raw = base64.b64encode(rfc5322(subject="Via control")).decode()
        message = c.post(f"/users/{USER}/messages", json={"raw_base64": raw}).json()
        read = c.patch(f"/users/{USER}/messages/{message['id']}", json={"is_read": True}).json()
        moved = c.post(f"/users/{USER}/messages/{message['id']}/move", json={"folder": "archive"}).json()
        archive = c.get(f"/users/{USER}/folders/archive").json()
        state = c.get("").json()

    # Then the double holds them as the Python API shows them
    assert app["client_id"] in ms.identity.apps
    assert user["id"] == ms.identity.users[USER].oid
    assert read["isRead"] is True
    assert moved["immutableId"] == message["immutableId"]
    assert moved["id"] != message["id"]
    assert [m["immutableId"] for m in archive] == [message["immutableId"]]
    assert state["users"] == [USER]


def test_control_api_revokes_evicts_faults_and_moves_the_clock(ms, http, app, tokens):
    # Given a connected app with a refresh token and a completed delta round
    graph = Graph(http, ms, tokens["access_token"])
    delta_link = graph.get("/me/mailFolders/inbox/messages/delta").json()["@odata.deltaLink"]
    with httpx.Client(base_url=str(ms.urls()["control"]), timeout=10) as c:
        # When the control API revokes sessions, evicts the delta state, arms a fault and moves the clock
        c.post(f"/users/{USER}/revoke", json={"kind": "sessions"})
        c.post(f"/users/{USER}/delta", json={"action": "expire", "folder": "inbox"})
        c.post("/faults", json={"count": 1, "status": 503, "match": "/mailFolders"})
        advanced = c.post("/clock/advance", json={"seconds": 30}).json()

    # Then each took effect
    assert refresh(http, ms, app, tokens["refresh_token"]).json()["error_codes"] == [50173]
    assert graph.get("/me/mailFolders").status_code == 503
    assert graph.get("/me/mailFolders").status_code == 200
    assert graph.get(delta_link).status_code == 410
    assert advanced["now"] == ms.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_command_line_seed_fills_the_inbox(ms, http, app):
    # Given a mailbox
    # When the demo messages of `python -m local.microsoft --user ...` are seeded
    count = seed_demo(ms, USER)

    # Then they are in the Inbox, visible through Graph
    graph = Graph(http, ms, connect(http, ms, app)["access_token"])
    listed = graph.get("/me/mailFolders/inbox/messages", params={"$select": "subject"}).json()["value"]
    assert len(listed) == count == 3
