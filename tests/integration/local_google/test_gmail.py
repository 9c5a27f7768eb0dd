"""Gmail API v1 on the double: auth errors, messages, labels, send threading, history."""

from __future__ import annotations

import base64

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.oauth import OAuthClient
from tests.integration.local_google.conftest import (
    FULL,
    HTTP,
    READONLY,
    USER,
    Gmail,
    b64url,
    connect,
    rfc5322,
)


def test_expired_access_token_is_401_with_google_body(
    google: GoogleDouble, client: OAuthClient, clock: ManualClock
) -> None:
    # Given an access token issued an hour ago (expires_in 3599)
    gmail = Gmail(google, connect(google, client)["access_token"])
    clock.advance(3600)

    # When it is used
    response = gmail.get("/profile")

    # Then Gmail answers 401 authError with WWW-Authenticate
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="https://accounts.google.com/"')
    error = response.json()["error"]
    assert error["code"] == 401
    assert error["status"] == "UNAUTHENTICATED"
    assert error["errors"] == [
        {
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        }
    ]


def test_missing_token_is_401(google: GoogleDouble, client: OAuthClient) -> None:
    # When a call carries no Authorization header
    answer = HTTP.get(google.gmail_url + "/users/me/profile")

    # Then it is a 401 with the "required" reason
    assert answer.status_code == 401
    assert answer.json()["error"]["errors"][0]["reason"] == "required"
    assert "www-authenticate" in answer.headers


def test_scope_not_granted_is_403_insufficient_permissions(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a token with gmail.readonly only
    gmail = Gmail(google, connect(google, client, scope=READONLY)["access_token"])
    message_id = google.deliver(USER, rfc5322())

    # When it tries to modify a message
    response = gmail.post(f"/messages/{message_id}/modify", {"removeLabelIds": ["UNREAD"]})

    # Then Gmail answers 403 insufficientPermissions, and the labels are untouched
    assert response.status_code == 403
    assert response.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert google.labels_of(USER, message_id) == ["INBOX", "UNREAD"]


def test_another_users_mailbox_is_delegation_denied(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a second account
    google.add_user("bob@example.com")

    # When Ada's token names Bob's address as userId, then her own
    bob = HTTP.get(google.gmail_url + "/users/bob@example.com/profile", headers=gmail.headers)
    ada = HTTP.get(google.gmail_url + f"/users/{USER}/profile", headers=gmail.headers)

    # Then Bob's is refused and Ada's address works like "me"
    assert bob.status_code == 403
    assert ada.json()["emailAddress"] == USER


def test_profile_and_list_and_get_formats(google: GoogleDouble, gmail: Gmail) -> None:
    # Given two messages, one read
    raw = rfc5322(message_id="<m1@customer.example>", body="Hi Ada & team,\r\nsee you.\r\n")
    first = google.deliver(USER, raw)
    second = google.deliver(USER, rfc5322(subject="Other"), labels=["INBOX"])

    # When the profile, the list and each format are read
    profile = gmail.get("/profile").json()
    listed = gmail.get("/messages").json()
    unread = gmail.get("/messages", q="is:unread").json()
    raw_get = gmail.get(f"/messages/{first}", format="raw").json()
    minimal = gmail.get(f"/messages/{first}", format="minimal").json()
    metadata = gmail.get(f"/messages/{first}", format="metadata", metadataHeaders=["Subject"]).json()
    full = gmail.get(f"/messages/{first}").json()

    # Then each has Gmail's shape
    assert profile == {
        "emailAddress": USER,
        "messagesTotal": 2,
        "threadsTotal": 2,
        "historyId": str(google.history_id(USER)),
    }
    assert listed == {
        "messages": [{"id": second, "threadId": second}, {"id": first, "threadId": first}],
        "resultSizeEstimate": 2,
    }
    assert [m["id"] for m in unread["messages"]] == [first]
    assert base64.urlsafe_b64decode(raw_get["raw"]) == raw
    assert "payload" not in raw_get
    assert set(minimal) == {
        "id",
        "threadId",
        "labelIds",
        "snippet",
        "sizeEstimate",
        "historyId",
        "internalDate",
    }
    assert metadata["payload"] == {
        "mimeType": "text/plain",
        "headers": [{"name": "Subject", "value": "Renewal quote"}],
    }
    assert full["snippet"] == "Hi Ada &amp; team, see you."
    assert full["payload"]["body"]["data"] == b64url(b"Hi Ada & team,\r\nsee you.\r\n")
    assert {"name": "Message-ID", "value": "<m1@customer.example>"} in full["payload"]["headers"]


def test_list_pages_with_next_page_token(google: GoogleDouble, gmail: Gmail) -> None:
    # Given five messages
    ids = [google.deliver(USER, rfc5322(subject=f"n{i}")) for i in range(5)]

    # When they are listed two at a time
    seen: list[str] = []
    page = gmail.get("/messages", maxResults=2).json()
    pages = 1
    while True:
        seen += [m["id"] for m in page["messages"]]
        if "nextPageToken" not in page:
            break
        page = gmail.get("/messages", maxResults=2, pageToken=page["nextPageToken"]).json()
        pages += 1

    # Then three pages give every message once, newest first
    assert pages == 3
    assert seen == list(reversed(ids))


def test_list_by_label_ids_matches_all_of_them_on_every_page(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a user label on two of three inbox messages, and one spam message with the label
    label = google.create_label(USER, "Customers")
    first, second, _inbox_only = (google.deliver(USER, rfc5322(subject=f"n{i}")) for i in range(3))
    spam = google.deliver(USER, rfc5322(subject="spam"), labels=["SPAM"])
    for message_id in (first, second, spam):
        google.relabel(USER, message_id, add=[label])

    # When the label is listed one message a page, with INBOX too, with SPAM, and by its name
    seen: list[str] = []
    page = gmail.get("/messages", labelIds=label, maxResults=1).json()
    while True:
        seen += [m["id"] for m in page.get("messages", [])]
        if "nextPageToken" not in page:
            break
        page = gmail.get("/messages", labelIds=label, maxResults=1, pageToken=page["nextPageToken"]).json()
    both = gmail.get("/messages", labelIds=[label, "INBOX"]).json()
    in_spam = gmail.get("/messages", labelIds=[label, "SPAM"]).json()
    by_name = gmail.get("/messages", labelIds="Customers")

    # Then the label's inbox messages, newest first (spam left out unless asked for); all the
    # ids must match; a name is not an id
    assert seen == [second, first]
    assert [m["id"] for m in both["messages"]] == [second, first]
    assert [m["id"] for m in in_spam["messages"]] == [spam]
    assert by_name.status_code == 400
    assert by_name.json()["error"]["message"] == "Invalid label: Customers"


def test_unknown_and_malformed_message_ids(google: GoogleDouble, gmail: Gmail) -> None:
    # When a message that does not exist, or a malformed id, is fetched
    missing = gmail.get("/messages/18c9f0a1b2c3d4e5")
    malformed = gmail.get("/messages/not-an-id!")

    # Then 404 notFound and 400
    assert missing.status_code == 404
    assert missing.json()["error"]["errors"][0]["reason"] == "notFound"
    assert malformed.status_code == 400


def test_modify_records_label_history(google: GoogleDouble, gmail: Gmail) -> None:
    # Given an unread message and the history id after it arrived
    message_id = google.deliver(USER, rfc5322())
    start = gmail.get("/profile").json()["historyId"]

    # When it is marked read and starred
    modified = gmail.post(
        f"/messages/{message_id}/modify", {"removeLabelIds": ["UNREAD"], "addLabelIds": ["STARRED"]}
    )
    history = gmail.get("/history", startHistoryId=start).json()

    # Then the answer and the history carry the change in Gmail's shapes
    assert modified.json() == {"id": message_id, "threadId": message_id, "labelIds": ["INBOX", "STARRED"]}
    [record] = history["history"]
    assert int(record["id"]) > int(start)
    assert record["labelsAdded"] == [
        {
            "message": {"id": message_id, "threadId": message_id, "labelIds": ["INBOX", "STARRED"]},
            "labelIds": ["STARRED"],
        }
    ]
    assert record["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    assert history["historyId"] == record["id"]


def test_sent_and_draft_labels_cannot_be_set(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a message
    message_id = google.deliver(USER, rfc5322())

    # When SENT is added, or an unknown label
    sent = gmail.post(f"/messages/{message_id}/modify", {"addLabelIds": ["SENT"]})
    unknown = gmail.post(f"/messages/{message_id}/modify", {"addLabelIds": ["Label_999"]})

    # Then both are 400 and nothing changed
    assert (sent.status_code, unknown.status_code) == (400, 400)
    assert google.labels_of(USER, message_id) == ["INBOX", "UNREAD"]


def test_trash_leaves_inbox_and_untrash_returns(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a message in the inbox
    message_id = google.deliver(USER, rfc5322())

    # When it is trashed, then untrashed
    trashed = gmail.post(f"/messages/{message_id}/trash").json()
    listed = gmail.get("/messages").json()
    untrashed = gmail.post(f"/messages/{message_id}/untrash").json()

    # Then trash removed INBOX and hid it from the list; untrash put it back
    assert "INBOX" not in trashed["labelIds"]
    assert "TRASH" in trashed["labelIds"]
    assert "messages" not in listed
    assert "INBOX" in untrashed["labelIds"]
    assert "TRASH" not in untrashed["labelIds"]


def test_delete_needs_full_scope_and_records_messages_deleted(
    google: GoogleDouble, client: OAuthClient
) -> None:
    # Given a message and two tokens: gmail.modify, and https://mail.google.com/
    message_id = google.deliver(USER, rfc5322())
    modify_only = Gmail(google, connect(google, client)["access_token"])
    full = Gmail(google, connect(google, client, scope=FULL)["access_token"])
    start = full.get("/profile").json()["historyId"]

    # When each deletes it
    refused = modify_only.delete(f"/messages/{message_id}")
    deleted = full.delete(f"/messages/{message_id}")

    # Then only the full scope may, and history records messagesDeleted
    assert refused.status_code == 403
    assert deleted.status_code == 204
    [record] = full.get("/history", startHistoryId=start).json()["history"]
    assert record["messagesDeleted"] == [{"message": {"id": message_id, "threadId": message_id}}]


def test_send_threads_only_with_matching_references_and_subject(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a received message
    original = google.deliver(USER, rfc5322(subject="Renewal quote", message_id="<q1@customer.example>"))

    # When a reply is sent with its threadId, and another with a different subject
    reply = rfc5322(
        subject="Re: Renewal quote",
        sender=USER,
        to="carol@customer.example",
        message_id="<r1@example.com>",
        in_reply_to="<q1@customer.example>",
    )
    other = rfc5322(
        subject="Unrelated", sender=USER, to="carol@customer.example", in_reply_to="<q1@customer.example>"
    )
    threaded = gmail.post("/messages/send", {"raw": b64url(reply), "threadId": original}).json()
    split = gmail.post("/messages/send", {"raw": b64url(other), "threadId": original}).json()

    # Then the reply joins the thread with SENT and keeps its Message-ID; the other starts a thread
    assert threaded["threadId"] == original
    assert threaded["labelIds"] == ["SENT"]
    assert split["threadId"] != original
    [first_sent, _] = google.sent(USER)
    assert first_sent.recipients == ["carol@customer.example"]
    assert b"Message-ID: <r1@example.com>" in first_sent.raw
    stored = gmail.get(f"/messages/{threaded['id']}", format="raw").json()
    assert base64.urlsafe_b64decode(stored["raw"]) == reply


def test_send_errors(google: GoogleDouble, gmail: Gmail) -> None:
    # When a message has no recipient, or names a thread that does not exist
    no_rcpt = gmail.post("/messages/send", {"raw": b64url(b"Subject: x\r\n\r\nbody\r\n")})
    bad_thread = gmail.post(
        "/messages/send", {"raw": b64url(rfc5322(to="c@x.example")), "threadId": "18c9f0a1b2c3d4e5"}
    )

    # Then both are 400 and nothing was sent
    assert no_rcpt.status_code == 400
    assert bad_thread.status_code == 400
    assert google.sent(USER) == []


def test_history_pages_and_filters_by_type(google: GoogleDouble, gmail: Gmail) -> None:
    # Given five arrivals and one label change after a saved history id
    start = gmail.get("/profile").json()["historyId"]
    ids = [google.deliver(USER, rfc5322(subject=f"n{i}")) for i in range(5)]
    google.relabel(USER, ids[0], remove=["UNREAD"])

    # When history is read two records at a time, then only label removals
    records: list[dict[str, object]] = []
    page = gmail.get("/history", startHistoryId=start, maxResults=2).json()
    while True:
        records += page["history"]
        if "nextPageToken" not in page:
            break
        page = gmail.get(
            "/history", startHistoryId=start, maxResults=2, pageToken=page["nextPageToken"]
        ).json()
    removals = gmail.get("/history", startHistoryId=start, historyTypes="labelRemoved").json()

    # Then every record came once, in increasing id order; the filter kept the one removal
    assert len(records) == 6
    assert [int(str(r["id"])) for r in records] == sorted(int(str(r["id"])) for r in records)
    assert [r["messagesAdded"][0]["message"]["id"] for r in records[:5]] == ids  # type: ignore[index]
    assert page["historyId"] == str(google.history_id(USER))
    assert [list(r) for r in removals["history"]] == [["id", "messages", "labelsRemoved"]]


def test_history_from_a_truncated_point_is_404(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a saved history id, then the history before now is dropped
    start = gmail.get("/profile").json()["historyId"]
    google.deliver(USER, rfc5322())
    google.truncate_history(USER)

    # When history is read from the saved id
    response = gmail.get("/history", startHistoryId=start)

    # Then Gmail answers the documented 404 body
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "errors": [
                {"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}
            ],
            "status": "NOT_FOUND",
        }
    }


def test_history_older_than_retention_is_404(
    google: GoogleDouble, client: OAuthClient, clock: ManualClock
) -> None:
    # Given a saved history id, a change, and eight days passing (retention is seven)
    start = str(google.history_id(USER))
    google.deliver(USER, rfc5322())
    clock.advance(8 * 86400)
    google.deliver(USER, rfc5322(subject="later"))
    gmail = Gmail(google, connect(google, client)["access_token"])

    # When history is read from the saved id, then from the current one
    stale = gmail.get("/history", startHistoryId=start)
    fresh = gmail.get("/history", startHistoryId=gmail.get("/profile").json()["historyId"])

    # Then the old one is 404; a fresh start works
    assert stale.status_code == 404
    assert fresh.status_code == 200


def test_labels_create_list_get(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a message
    message_id = google.deliver(USER, rfc5322())

    # When a user label is created, applied, listed and read
    created = gmail.post("/labels", {"name": "Customers"}).json()
    duplicate = gmail.post("/labels", {"name": "customers"})
    gmail.post(f"/messages/{message_id}/modify", {"addLabelIds": [created["id"]]})
    listed = gmail.get("/labels").json()["labels"]
    got = gmail.get(f"/labels/{created['id']}").json()
    by_label = gmail.get("/messages", q="label:customers").json()

    # Then the label has Gmail's shape and counts
    assert created["id"].startswith("Label_")
    assert created["type"] == "user"
    assert duplicate.status_code == 409
    assert {"id": "INBOX", "name": "INBOX", "type": "system"} in listed
    assert (got["messagesTotal"], got["messagesUnread"], got["threadsTotal"]) == (1, 1, 1)
    assert [m["id"] for m in by_label["messages"]] == [message_id]


def test_delivered_replies_join_the_thread(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a message Ada received
    first = google.deliver(USER, rfc5322(subject="Delivery", message_id="<d1@supplier.example>"))

    # When the sender's reply arrives
    second = google.deliver(USER, rfc5322(subject="RE: Delivery", in_reply_to="<d1@supplier.example>"))
    thread = gmail.get(f"/threads/{first}", format="minimal").json()

    # Then both are in one thread
    assert [m["id"] for m in thread["messages"]] == [first, second]
    assert thread["historyId"] == str(google.history_id(USER))


def test_insert_import_and_media_upload(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a token with the full scope (insert/import accept it)
    gmail = Gmail(google, connect(google, client, scope=FULL)["access_token"])
    raw = rfc5322(subject="Imported", message_id="<i1@customer.example>")

    # When a message is inserted with labels, imported without, and sent through the media upload path
    inserted = gmail.post("/messages", {"raw": b64url(raw), "labelIds": ["STARRED"]}).json()
    imported = gmail.post("/messages/import", {"raw": b64url(raw)}).json()
    uploaded = HTTP.post(
        google.base_url + "/upload/gmail/v1/users/me/messages/send?uploadType=media",
        content=rfc5322(sender=USER, to="carol@customer.example"),
        headers={**gmail.headers, "Content-Type": "message/rfc822"},
    ).json()

    # Then insert keeps the labels given, import lands in the inbox unread, the upload was sent
    assert inserted["labelIds"] == ["STARRED"]
    assert imported["labelIds"] == ["INBOX", "UNREAD"]
    assert uploaded["labelIds"] == ["SENT"]
    assert [s.message_id for s in google.sent(USER)] == [uploaded["id"]]


def test_batch_modify_and_attachments(google: GoogleDouble, gmail: Gmail) -> None:
    # Given two messages, one with a PDF attachment
    pdf = base64.b64encode(b"%PDF-1.4 test").decode()
    with_file = (
        f"From: carol@customer.example\r\nTo: {USER}\r\nSubject: Quote\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        '--b\r\nContent-Type: application/pdf; name="q.pdf"\r\n'
        'Content-Disposition: attachment; filename="q.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--b--\r\n"
    ).encode()
    first = google.deliver(USER, with_file)
    second = google.deliver(USER, rfc5322())

    # When both are marked read in one batch, and the attachment is fetched by its id
    batch = gmail.post("/messages/batchModify", {"ids": [first, second], "removeLabelIds": ["UNREAD"]})
    part = gmail.get(f"/messages/{first}").json()["payload"]["parts"][1]
    attachment = gmail.get(f"/messages/{first}/attachments/{part['body']['attachmentId']}").json()

    # Then the batch answered 204 and changed both; the attachment part and its body are Gmail's
    assert batch.status_code == 204
    assert google.labels_of(USER, first) == google.labels_of(USER, second) == ["INBOX"]
    assert (part["partId"], part["mimeType"], part["filename"]) == ("1", "application/pdf", "q.pdf")
    assert "data" not in part["body"]
    assert base64.urlsafe_b64decode(attachment["data"]) == b"%PDF-1.4 test"
    assert attachment["size"] == len(b"%PDF-1.4 test")


def test_drafts_keep_their_id_across_updates_and_drafts_send_removes_the_draft(
    google: GoogleDouble, gmail: Gmail
) -> None:
    # Given a draft (users.drafts.create)
    first = rfc5322(subject="Quote", sender=USER, to="carol@customer.example", body="first\r\n")
    created = gmail.post("/drafts", {"message": {"raw": b64url(first)}}).json()
    assert created["message"]["labelIds"] == ["DRAFT"]
    # When its content is replaced (users.drafts.update)
    second = rfc5322(subject="Quote", sender=USER, to="carol@customer.example", body="second\r\n")
    updated = HTTP.put(
        f"{gmail.base}/drafts/{created['id']}",
        json={"id": created["id"], "message": {"raw": b64url(second)}},
        headers=gmail.headers,
    ).json()
    # Then the draft keeps its id, its message is a new one and the old one is gone
    assert updated["id"] == created["id"]
    assert updated["message"]["id"] != created["message"]["id"]
    assert gmail.get(f"/messages/{created['message']['id']}").status_code == 404
    assert google.drafts(USER) == {created["id"]: second}
    # When it is sent (users.drafts.send)
    sent = gmail.post("/drafts/send", {"id": created["id"]}).json()
    # Then it went out with SENT and the draft is gone
    assert sent["labelIds"] == ["SENT"]
    assert [s.recipients for s in google.sent(USER)] == [["carol@customer.example"]]
    assert google.drafts(USER) == {}
    assert gmail.get(f"/drafts/{created['id']}").status_code == 404


def test_draft_errors(google: GoogleDouble, gmail: Gmail) -> None:
    # Given a draft without a recipient
    created = gmail.post("/drafts", {"message": {"raw": b64url(b"Subject: x\r\n\r\nbody\r\n")}}).json()
    # When it is sent, and an unknown draft is updated, deleted or sent
    no_rcpt = gmail.post("/drafts/send", {"id": created["id"]})
    unknown = [
        HTTP.put(
            f"{gmail.base}/drafts/r123",
            json={"message": {"raw": b64url(b"Subject: y\r\n\r\n")}},
            headers=gmail.headers,
        ),
        gmail.delete("/drafts/r123"),
        gmail.post("/drafts/send", {"id": "r123"}),
    ]
    # Then the send is 400 and the draft stays; the unknown draft is 404 each time
    assert no_rcpt.status_code == 400
    assert list(google.drafts(USER)) == [created["id"]]
    assert google.sent(USER) == []
    assert [r.status_code for r in unknown] == [404, 404, 404]
    # And delete removes a draft for good (204)
    assert gmail.delete(f"/drafts/{created['id']}").status_code == 204
    assert google.drafts(USER) == {}
