"""Throttling, faults and authentication errors on the double's Graph endpoints."""

from __future__ import annotations

import ssl
import threading

import httpx
import pytest

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from tests.integration.local_microsoft.conftest import REDIRECT, USER, Graph, connect, rfc5322


@pytest.fixture
def limited(clock: ManualClock):
    # Outlook's limits scaled down so a test can reach them: 5 requests per 10 minutes.
    with MicrosoftDouble(clock=clock, seed=3, requests_per_window=5) as double:
        yield double


def _client(double: MicrosoftDouble) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=double.ca_file), timeout=15)


def _graph(double: MicrosoftDouble, http: httpx.Client) -> Graph:
    double.add_user(USER)
    app = double.register_app([REDIRECT])
    return Graph(http, double, connect(http, double, app)["access_token"])


def test_over_the_request_rate_is_429_with_retry_after_until_the_clock_moves(limited, clock):
    # Given a mailbox limited to 5 requests per 10 minutes
    with _client(limited) as http:
        graph = _graph(limited, http)
        statuses = [graph.get("/me/mailFolders").status_code for _ in range(5)]

        # When a sixth request comes within the window
        throttled = graph.get("/me/mailFolders")

        # Then 429 TooManyRequests with Retry-After (seconds until the window has room)
        assert statuses == [200] * 5
        assert throttled.status_code == 429
        error = throttled.json()["error"]
        assert error["code"] == "TooManyRequests"
        assert error["innerError"]["status"] == "429"
        retry_after = int(throttled.headers["retry-after"])
        assert 0 < retry_after <= 600

        # When the client waits less than Retry-After, it is still throttled (and that try counts too)
        clock.advance(retry_after - 1)
        assert graph.get("/me/mailFolders").status_code == 429

        # When the clock has moved past the window, requests succeed again
        clock.advance(600)
        assert graph.get("/me/mailFolders").status_code == 200


def test_a_fifth_concurrent_request_to_a_mailbox_is_429_mailbox_concurrency(ms, graph):
    # Given four requests to the mailbox held in flight
    hold = ms.hold(USER)
    results: list[int] = []

    def call() -> None:
        results.append(graph.get("/me/mailFolders").status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert hold.wait_for(4)

    # When a fifth one arrives
    fifth = graph.get("/me/mailFolders/inbox")

    # Then it is refused with ApplicationThrottled / MailboxConcurrency and no Retry-After
    assert fifth.status_code == 429
    assert fifth.json() == {
        "error": {
            "code": "ApplicationThrottled",
            "message": "Application is over its MailboxConcurrency limit.",
        }
    }
    assert "retry-after" not in fifth.headers
    # and once the four finish, the mailbox answers again
    hold.release()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [200] * 4
    assert graph.get("/me/mailFolders/inbox").status_code == 200


def test_a_batch_answers_200_while_requests_inside_are_throttled_one_by_one(limited):
    # Given a mailbox with 2 requests left in its window (connect used none; 3 spent here)
    with _client(limited) as http:
        graph = _graph(limited, http)
        for _ in range(3):
            assert graph.get("/me/mailFolders").status_code == 200

        # When a batch of four GETs is sent
        requests = [{"id": str(i), "method": "GET", "url": "/me/mailFolders/inbox"} for i in range(1, 5)]
        response = graph.post("/$batch", {"requests": requests})

        # Then the envelope is 200, two answers are 200 and two are 429 with their own Retry-After
        assert response.status_code == 200
        by_id = {r["id"]: r for r in response.json()["responses"]}
        assert sorted(r["status"] for r in by_id.values()) == [200, 200, 429, 429]
        throttled = [r for r in by_id.values() if r["status"] == 429]
        assert all(int(r["headers"]["Retry-After"]) > 0 for r in throttled)
        assert all(r["body"]["error"]["code"] == "TooManyRequests" for r in throttled)


def test_batch_limits_and_dependencies(ms, graph):
    # Given a message
    message = ms.deliver(USER, rfc5322())

    # When a batch has 21 requests, or a request depends on one that fails
    too_many = graph.post(
        "/$batch", {"requests": [{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)]}
    )
    chained = graph.post(
        "/$batch",
        {
            "requests": [
                {"id": "1", "method": "GET", "url": "/me/messages/does-not-exist"},
                {
                    "id": "2",
                    "method": "PATCH",
                    "url": f"/me/messages/{message.rest_id}",
                    "dependsOn": ["1"],
                    "headers": {"Content-Type": "application/json"},
                    "body": {"isRead": True},
                },
                {"id": "3", "method": "GET", "url": f"/me/messages/{message.rest_id}/$value"},
            ]
        },
    )

    # Then the 21-request batch is refused whole; the dependent request fails 424, bodies are per request
    assert too_many.status_code == 400
    responses = {r["id"]: r for r in chained.json()["responses"]}
    assert responses["1"]["status"] == 404
    assert responses["2"]["status"] == 424
    assert responses["3"]["status"] == 200
    assert ms.message(USER, message.rest_id).is_read is False


def test_injected_503_and_504_then_recovery(ms, graph):
    # Given two faults armed for delta requests
    ms.fail_next(1, 503, match="/delta")
    ms.fail_next(1, 504, match="/delta")

    # When delta is called three times
    first = graph.get("/me/mailFolders/inbox/messages/delta")
    second = graph.get("/me/mailFolders/inbox/messages/delta")
    third = graph.get("/me/mailFolders/inbox/messages/delta")

    # Then 503 serviceNotAvailable with Retry-After, 504, then a normal answer
    assert (first.status_code, first.json()["error"]["code"]) == (503, "serviceNotAvailable")
    assert "retry-after" in first.headers
    assert second.status_code == 504
    assert third.status_code == 200


def test_missing_and_expired_access_tokens_are_401_invalid_authentication_token(ms, http, graph, tokens):
    # Given no token, and then the user's token outliving its lifetime
    missing = http.get(ms.graph_url + "/me/messages")
    ms.advance(tokens["expires_in"] + 1)

    # When Graph is called with the expired token
    expired = graph.get("/me/messages")

    # Then both are 401 InvalidAuthenticationToken with a Bearer challenge
    for response in (missing, expired):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_token_without_mail_send_cannot_send_and_revocation_leaves_access_tokens_alive(ms, http, app):
    # Given a token with only Mail.Read
    token = connect(http, ms, app, scope="Mail.Read offline_access")["access_token"]
    graph = Graph(http, ms, token)

    # When it sends mail, and when it reads after the user's sessions were revoked
    send = graph.post(
        "/me/sendMail", {"message": {"toRecipients": [{"emailAddress": {"address": "x@example.com"}}]}}
    )
    ms.revoke(USER)
    read = graph.get("/me/mailFolders")

    # Then sending is 403 ErrorAccessDenied, and the access token still works until it expires
    assert send.status_code == 403
    assert send.json()["error"]["code"] == "ErrorAccessDenied"
    assert read.status_code == 200
