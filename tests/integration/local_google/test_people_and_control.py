"""People connections.list with sync tokens, the /__double__ control API, and `python -m local.google`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.oauth import OAuthClient
from tests.integration.local_google.conftest import CONTACTS, HTTP, MODIFY, USER, connect, rfc5322

ROOT = Path(__file__).resolve().parents[3]


def connections(google: GoogleDouble, token: str, **params: Any) -> httpx.Response:
    return HTTP.get(
        google.people_url + "/people/me/connections",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_connections_list_shapes_and_paging(google: GoogleDouble, client: OAuthClient) -> None:
    # Given three contacts and a token with contacts.readonly
    google.add_contact(
        USER, name="Carol Customer", emails=["carol@customer.example"], organization="Customer AG"
    )
    google.add_contact(
        USER, name="Dan Supplier", emails=["dan@supplier.example"], phones=["+41 44 000 00 00"]
    )
    google.add_contact(USER, name="Eve Example", emails=["eve@example.org"])
    token = connect(google, client, scope=CONTACTS)["access_token"]

    # When they are listed two at a time with the fields asked
    fields = "names,emailAddresses,organizations,phoneNumbers"
    first = connections(google, token, personFields=fields, pageSize=2).json()
    second = connections(
        google, token, personFields=fields, pageSize=2, pageToken=first["nextPageToken"]
    ).json()

    # Then the People API shapes come back over two pages
    people = first["connections"] + second["connections"]
    assert len(people) == 3
    assert "nextPageToken" not in second
    carol = people[0]
    assert carol["resourceName"].startswith("people/c")
    assert carol["names"][0]["displayName"] == "Carol Customer"
    assert carol["names"][0]["metadata"]["primary"] is True
    assert carol["emailAddresses"][0]["value"] == "carol@customer.example"
    assert carol["organizations"][0]["name"] == "Customer AG"
    assert people[1]["phoneNumbers"][0]["value"] == "+41 44 000 00 00"
    assert first["totalItems"] == 3


def test_sync_token_returns_changes_and_deletions(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a full sync that asked for a sync token
    kept = google.add_contact(USER, name="Carol Customer", emails=["carol@customer.example"])
    gone = google.add_contact(USER, name="Dan Supplier", emails=["dan@supplier.example"])
    google.add_contact(USER, name="Eve Unchanged", emails=["eve@example.org"])
    token = connect(google, client, scope=CONTACTS)["access_token"]
    full = connections(google, token, personFields="names,emailAddresses", requestSyncToken="true").json()

    # When one contact changes, one is deleted, and the sync token is used
    google.add_contact(USER, emails=["carol@new.example"], resource_name=kept.resource_name)
    google.delete_contact(USER, gone.resource_name)
    delta = connections(
        google,
        token,
        personFields="names,emailAddresses",
        requestSyncToken="true",
        syncToken=full["nextSyncToken"],
    ).json()

    # Then only the two changes come back, the deletion flagged, and a new sync token
    by_name = {p["resourceName"]: p for p in delta["connections"]}
    assert set(by_name) == {kept.resource_name, gone.resource_name}
    assert by_name[kept.resource_name]["emailAddresses"][0]["value"] == "carol@new.example"
    assert by_name[gone.resource_name]["metadata"]["deleted"] is True
    assert delta["nextSyncToken"] != full["nextSyncToken"]


def test_expired_sync_token(google: GoogleDouble, client: OAuthClient, clock: ManualClock) -> None:
    # Given a sync token from a full sync eight days ago
    google.add_contact(USER, name="Carol Customer")
    token = connect(google, client, scope=CONTACTS)["access_token"]
    sync = connections(google, token, personFields="names", requestSyncToken="true").json()["nextSyncToken"]
    clock.advance(8 * 86400)
    token = connect(google, client, scope=CONTACTS)["access_token"]

    # When it is used
    response = connections(google, token, personFields="names", requestSyncToken="true", syncToken=sync)

    # Then the error carries ErrorInfo reason EXPIRED_SYNC_TOKEN
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "FAILED_PRECONDITION"
    assert error["details"][0]["reason"] == "EXPIRED_SYNC_TOKEN"


def test_connections_need_person_fields_and_a_contacts_scope(
    google: GoogleDouble, client: OAuthClient
) -> None:
    # Given a token with contacts.readonly and one with Gmail only
    contacts = connect(google, client, scope=CONTACTS)["access_token"]
    gmail_only = connect(google, client, scope=MODIFY)["access_token"]

    # When personFields is missing, or the scope is wrong
    no_fields = connections(google, contacts)
    no_scope = connections(google, gmail_only, personFields="names")

    # Then 400 and 403
    assert no_fields.status_code == 400
    assert no_scope.status_code == 403


def test_control_api_drives_a_mailbox_over_http(google: GoogleDouble) -> None:
    # Given the control base URL
    control = google.base_url + "/__double__"

    # When a client, a user and a message are created, relabelled and inspected over HTTP
    client = HTTP.post(control + "/clients", json={"redirect_uris": ["http://127.0.0.1:3000/cb"]}).json()
    HTTP.post(control + "/users", json={"address": USER})
    created = HTTP.post(control + f"/users/{USER}/messages", json={"raw": rfc5322().decode()}).json()
    relabelled = HTTP.post(
        control + f"/users/{USER}/messages/{created['id']}/labels", json={"remove": ["UNREAD"]}
    )
    state = HTTP.get(control).json()
    listed = HTTP.get(control + f"/users/{USER}/messages").json()

    # Then the double holds them, and lists them with their labels and Subject
    assert client["client_id"] in state["clients"]
    assert state["users"] == [USER]
    assert created["labelIds"] == ["INBOX", "UNREAD"]
    assert relabelled.json()["labelIds"] == ["INBOX"]
    assert google.labels_of(USER, created["id"]) == ["INBOX"]
    assert state["urls"]["token"] == google.token_url
    assert [(m["id"], m["labelIds"]) for m in listed] == [(created["id"], ["INBOX"])]
    assert listed[0]["subject"] == "Renewal quote"


def test_module_runs_as_a_process_and_prints_its_urls() -> None:
    # When `python -m local.google --port 0 --user ...` starts
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.google",
            "--port",
            "0",
            "--user",
            USER,
            "--redirect-uri",
            "http://x/cb",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        token_url = next(line.split('"')[3] for line in lines if '"token"' in line)

        # Then it printed its URLs and answers on them
        assert "Account and mailbox: ada@example.com" in output
        assert HTTP.post(token_url, data={"grant_type": "refresh_token"}).json()["error"] == "invalid_client"
    finally:
        process.terminate()
        process.wait(timeout=10)
