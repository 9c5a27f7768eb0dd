"""Graph v1.0 mail on the double: folders, delta rounds, resets, ids across moves, MIME, send, contacts."""

from __future__ import annotations

import base64
from email import message_from_bytes
from typing import Any

from tests.integration.local_microsoft.conftest import USER, Graph, rfc5322

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def _seed(ms, count: int) -> list[Any]:
    return [
        ms.deliver(USER, rfc5322(subject=f"Quote {i}", message_id=f"<q{i}@customer.example>"))
        for i in range(count)
    ]


def _walk(
    graph: Graph, url: str, page_size: int = 2, headers: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink; returns (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = graph.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}", **(headers or {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["value"]) <= page_size + 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_mail_folders_list_the_well_known_folders_and_resolve_their_names(ms, graph):
    # Given a new mailbox with one message in the Inbox
    _seed(ms, 1)

    # When the folders are listed and the Inbox is fetched by its well-known name
    names = [f["displayName"] for f in graph.get("/me/mailFolders").json()["value"]]
    inbox = graph.get("/me/mailFolders/inbox").json()

    # Then the well-known folders are there and `inbox` resolves to the Inbox's id
    assert names == ["Archive", "Deleted Items", "Drafts", "Inbox", "Junk Email", "Outbox", "Sent Items"]
    assert inbox["displayName"] == "Inbox"
    assert inbox["id"] == ms.folder_id(USER, "inbox")
    assert inbox["totalItemCount"] == 1
    assert inbox["unreadItemCount"] == 1


def test_delta_walks_pages_to_a_delta_link_then_reports_changes_and_removals(ms, graph):
    # Given five messages in the Inbox
    seeded = _seed(ms, 5)

    # When a first round is walked with odata.maxpagesize=2 and $select
    items, delta_link, pages = _walk(graph, "/me/mailFolders('inbox')/messages/delta?$select=subject,isRead")

    # Then three pages bring all five, with only the selected properties (+ id and annotations)
    assert pages == 3
    assert sorted(i["subject"] for i in items) == [f"Quote {i}" for i in range(5)]
    assert set(items[0]) == {"@odata.type", "@odata.etag", "id", "subject", "isRead"}
    assert "$deltatoken=" in delta_link

    # Given one message read, one deleted (to Deleted Items), one purged, one new
    deleted_id, purged_id = seeded[1].rest_id, seeded[2].rest_id
    ms.mark_read(USER, seeded[0].rest_id)
    ms.delete(USER, seeded[1].rest_id)
    ms.purge(USER, seeded[2].rest_id)
    ms.deliver(USER, rfc5322(subject="Quote 5"))

    # When the deltaLink starts the next round
    changes, _, _ = _walk(graph, delta_link)

    # Then only the changes come back: the update, the new one, and two @removed
    removed = {c["id"] for c in changes if "@removed" in c}
    assert removed == {deleted_id, purged_id}
    assert all(c["@removed"] == {"reason": "deleted"} for c in changes if "@removed" in c)
    present = {c["subject"]: c["isRead"] for c in changes if "@removed" not in c}
    assert present == {"Quote 0": True, "Quote 5": False}


def test_delta_pages_come_in_no_particular_order_and_replays_repeat_items(ms, graph):
    # Given six messages delivered in order, and a replay injected into the next page
    _seed(ms, 6)
    ms.inject_replays(USER, pages=1)

    # When a round is walked three at a time
    items, _, _ = _walk(graph, "/me/mailFolders/inbox/messages/delta?$select=subject", page_size=3)

    # Then the order is not the delivery order, and one item came twice (a replay)
    subjects = [i["subject"] for i in items]
    assert len(subjects) == 7
    assert len(set(subjects)) == 6
    assert list(dict.fromkeys(subjects)) != [f"Quote {i}" for i in range(6)]


def test_an_evicted_delta_token_answers_410_sync_state_not_found_then_a_full_resync_works(ms, graph):
    # Given a completed round
    _seed(ms, 3)
    _, delta_link, _ = _walk(graph, "/me/mailFolders/inbox/messages/delta")

    # When the sync state is evicted and the deltaLink is used
    ms.expire_delta_tokens(USER, "inbox")
    gone = graph.get(delta_link)

    # Then 410 with Outlook's SyncStateNotFound body, and a fresh initial request resyncs everything
    assert gone.status_code == 410
    error = gone.json()["error"]
    assert error["code"] == "SyncStateNotFound"
    assert error["message"].startswith("The sync state generation is not found")
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    items, _, _ = _walk(graph, "/me/mailFolders/inbox/messages/delta")
    assert len(items) == 3


def test_a_synchronization_reset_is_410_gone_with_a_location_for_a_full_sync(ms, graph):
    # Given a completed round
    _seed(ms, 2)
    _, delta_link, _ = _walk(graph, "/me/mailFolders/inbox/messages/delta")

    # When the service resets the sync state
    ms.reset_delta(USER, "inbox")
    response = graph.get(delta_link)

    # Then 410 Gone with a Location holding an empty $deltatoken, which starts over
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "resyncRequired"
    location = response.headers["location"]
    assert location.endswith("/messages/delta?$deltatoken=")
    items, _, _ = _walk(graph, location)
    assert len(items) == 2


def test_an_old_next_link_is_evicted_after_three_newer_generations(ms, graph):
    # Given ten messages and a round walked one page at a time
    _seed(ms, 10)
    first = graph.get(
        "/me/mailFolders/inbox/messages/delta", headers={"Prefer": "odata.maxpagesize=2"}
    ).json()
    old_next = first["@odata.nextLink"]
    url = old_next
    for _ in range(3):
        url = graph.get(url, headers={"Prefer": "odata.maxpagesize=2"}).json()["@odata.nextLink"]

    # When the first nextLink is replayed
    replayed = graph.get(old_next, headers={"Prefer": "odata.maxpagesize=2"})

    # Then Outlook's cache only keeps the last three generations: 410 SyncStateNotFound
    assert replayed.status_code == 410
    assert replayed.json()["error"]["code"] == "SyncStateNotFound"


def test_immutable_ids_survive_a_move_and_rest_ids_do_not(ms, graph):
    # Given a message seen once with each id format
    message = _seed(ms, 1)[0]
    rest = graph.get(f"/me/messages/{message.rest_id}").json()
    immutable = graph.get(f"/me/messages/{message.rest_id}", headers=IMMUTABLE).json()
    _, inbox_delta, _ = _walk(graph, "/me/mailFolders/inbox/messages/delta", headers=IMMUTABLE)

    # When it is moved to Archive through Graph
    moved = graph.post(f"/me/messages/{rest['id']}/move", {"destinationId": "archive"}, headers=IMMUTABLE)

    # Then the REST id changed and the old one is gone, the immutable id did not change
    assert moved.status_code == 201
    assert moved.json()["id"] == immutable["id"]
    assert moved.json()["parentFolderId"] == ms.folder_id(USER, "archive")
    new_rest = graph.get(f"/me/messages/{immutable['id']}").json()["id"]
    assert new_rest != rest["id"]
    assert graph.get(f"/me/messages/{rest['id']}").json()["error"]["code"] == "ErrorItemNotFound"
    # and the Inbox's next delta round reports it removed under its immutable id
    changes, _, _ = _walk(graph, inbox_delta, headers=IMMUTABLE)
    assert changes == [
        {"@odata.type": "#microsoft.graph.message", "id": immutable["id"], "@removed": {"reason": "deleted"}}
    ]


def test_message_resource_shape_conversation_and_mime_value(ms, graph):
    # Given a message and a reply to it
    first = ms.deliver(USER, rfc5322(subject="Renewal", message_id="<a1@customer.example>"))
    reply = ms.deliver(
        USER,
        rfc5322(
            subject="Re: Renewal", message_id="<a2@customer.example>", in_reply_to="<a1@customer.example>"
        ),
    )
    other = ms.deliver(USER, rfc5322(subject="Something else", message_id="<b1@customer.example>"))

    # When they are fetched as resources and as MIME
    one = graph.get(f"/me/messages/{first.rest_id}").json()
    two = graph.get(f"/me/messages/{reply.rest_id}").json()
    three = graph.get(f"/me/messages/{other.rest_id}").json()
    mime = graph.get(f"/me/messages/{first.rest_id}/$value")

    # Then Graph's properties come from the MIME, the reply shares the conversationId
    assert one["subject"] == "Renewal"
    assert one["from"] == {"emailAddress": {"name": "Carol", "address": "carol@customer.example"}}
    assert one["toRecipients"] == [{"emailAddress": {"name": USER, "address": USER}}]
    assert one["internetMessageId"] == "<a1@customer.example>"
    assert one["sentDateTime"] == "2030-01-01T09:00:00Z"
    assert one["body"] == {"contentType": "text", "content": "Hello Ada,\r\nthe quote is attached.\r\n"}
    assert one["@odata.etag"] == f'W/"{one["changeKey"]}"'
    assert two["conversationId"] == one["conversationId"] != three["conversationId"]
    # and $value is the MIME with CRLF line ends
    assert mime.status_code == 200
    assert mime.headers["content-type"].startswith("text/plain")
    assert message_from_bytes(mime.content)["Message-ID"] == "<a1@customer.example>"
    assert b"\r\n\r\nHello Ada," in mime.content


def test_patch_read_and_flag_and_refuse_read_only_properties(ms, graph):
    # Given a message
    message = _seed(ms, 1)[0]

    # When it is marked read and flagged, and then its subject is PATCHed
    updated = graph.patch(
        f"/me/messages/{message.rest_id}", {"isRead": True, "flag": {"flagStatus": "flagged"}}
    )
    subject = graph.patch(f"/me/messages/{message.rest_id}", {"subject": "changed"})
    unknown = graph.patch(f"/me/messages/{message.rest_id}", {"colour": "red"})

    # Then the flags are stored, a sent/received message's subject cannot change, unknown names are 400
    assert updated.status_code == 200
    assert (updated.json()["isRead"], updated.json()["flag"]["flagStatus"]) == (True, "flagged")
    assert ms.message(USER, message.rest_id).is_read is True
    assert subject.status_code == 400
    assert subject.json()["error"]["code"] == "ErrorInvalidPropertyUpdateSentMessage"
    assert unknown.status_code == 400


def test_delete_takes_the_message_out_of_every_visible_folder(ms, graph):
    # Given a message
    message = _seed(ms, 1)[0]

    # When it is deleted through Graph
    response = graph.delete(f"/me/messages/{message.rest_id}")

    # Then 204, it is gone from the Inbox and not in Deleted Items either (Recoverable Items)
    assert response.status_code == 204
    assert ms.folder_contents(USER, "inbox") == []
    assert ms.folder_contents(USER, "deleteditems") == []
    assert graph.get(f"/me/messages/{message.rest_id}").status_code == 404


def test_send_mail_with_mime_keeps_the_message_id_and_saves_to_sent_items(ms, graph):
    # Given a MIME message with our own Message-ID, to a recipient that has a mailbox here too
    ms.add_user("bob@contoso.example")
    raw = rfc5322(
        subject="Proposal",
        sender=f"Ada Lovelace <{USER}>",
        to="Bob <bob@contoso.example>",
        message_id="<ours-1@mailbridge.example>",
    )

    # When it is sent with sendMail as base64 text/plain
    response = graph.post_raw("/me/sendMail", base64.b64encode(raw), "text/plain")

    # Then 202, the Sent Items copy and the recipient's copy carry the same Internet Message-ID
    assert response.status_code == 202
    assert [s.internet_message_id for s in ms.sent(USER)] == ["<ours-1@mailbridge.example>"]
    sent_items = ms.folder_contents(USER, "sentitems")
    assert [m.internet_message_id for m in sent_items] == ["<ours-1@mailbridge.example>"]
    assert [m.internet_message_id for m in ms.folder_contents("bob@contoso.example", "inbox")] == [
        "<ours-1@mailbridge.example>"
    ]
    listed = graph.get(
        "/me/mailFolders/sentitems/messages", params={"$select": "internetMessageId,isRead"}
    ).json()["value"]
    assert [(m["internetMessageId"], m["isRead"]) for m in listed] == [("<ours-1@mailbridge.example>", True)]


def test_send_mail_errors_are_graphs(ms, graph):
    # Given MIME from someone else, and a body that is not base64
    foreign = rfc5322(sender="Mallory <mallory@evil.example>", to="bob@example.com")

    # When they are sent
    send_as = graph.post_raw("/me/sendMail", base64.b64encode(foreign), "text/plain")
    garbage = graph.post_raw("/me/sendMail", b"this is not base64 !!!", "text/plain")

    # Then 403 ErrorSendAsDenied, and the documented 400 for invalid base64
    assert send_as.status_code == 403
    assert send_as.json()["error"]["code"] == "ErrorSendAsDenied"
    assert garbage.status_code == 400
    assert garbage.json() == {
        "error": {
            "code": "ErrorMimeContentInvalidBase64String",
            "message": "Invalid base64 string for MIME content.",
        }
    }
    assert ms.sent(USER) == []


def test_send_mail_json_honours_save_to_sent_items_false(ms, graph):
    # Given a JSON message (saveToSentItems given as a string, as in Microsoft's own sample)
    body = {
        "message": {
            "subject": "Meet for lunch?",
            "body": {"contentType": "Text", "content": "The new cafeteria is open."},
            "toRecipients": [{"emailAddress": {"address": "frannis@contoso.example"}}],
        },
        "saveToSentItems": "false",
    }

    # When it is sent
    response = graph.post("/me/sendMail", body)

    # Then it went out, with a Message-ID Exchange made, and no Sent Items copy
    assert response.status_code == 202
    sent = ms.sent(USER)
    assert len(sent) == 1
    assert sent[0].recipients == ["frannis@contoso.example"]
    assert sent[0].internet_message_id is not None
    assert sent[0].internet_message_id.endswith(".prod.outlook.com>")
    assert ms.folder_contents(USER, "sentitems") == []


def test_a_draft_sent_keeps_its_immutable_id_in_sent_items(ms, graph):
    # Given a draft created with the immutable id header
    draft = graph.post(
        "/me/messages",
        {"subject": "Draft", "toRecipients": [{"emailAddress": {"address": "x@example.com"}}]},
        headers=IMMUTABLE,
    ).json()

    # When it is sent
    sent = graph.post(f"/me/messages/{draft['id']}/send")

    # Then the same immutable id now names the Sent Items copy [outlook-immutable-id]
    assert sent.status_code == 202
    copy = graph.get(f"/me/messages/{draft['id']}", headers=IMMUTABLE).json()
    assert copy["id"] == draft["id"]
    assert copy["parentFolderId"] == ms.folder_id(USER, "sentitems")
    assert copy["isDraft"] is False


def test_contacts_list_and_delta(ms, graph):
    # Given two contacts
    carol = ms.add_contact(USER, "Carol Customer", ["carol@customer.example"], company="Customer Ltd")
    ms.add_contact(USER, "Dan Supplier", ["dan@supplier.example"])

    # When they are listed, and a delta round is walked, then Carol is deleted
    listed = graph.get("/me/contacts").json()["value"]
    items, delta_link, _ = _walk(graph, "/me/contacts/delta")
    ms.delete_contact(USER, carol.id)
    changes, _, _ = _walk(graph, delta_link)

    # Then the contact resources carry the names and addresses, and the next round removes Carol
    assert [c["displayName"] for c in listed] == ["Carol Customer", "Dan Supplier"]
    assert listed[0]["emailAddresses"] == [{"name": "Carol Customer", "address": "carol@customer.example"}]
    assert listed[0]["companyName"] == "Customer Ltd"
    assert len(items) == 2
    assert changes == [
        {"@odata.type": "#microsoft.graph.contact", "id": carol.id, "@removed": {"reason": "deleted"}}
    ]


def test_list_messages_pages_with_skip_and_other_users_mailboxes_are_denied(ms, graph):
    # Given twelve messages and another user
    _seed(ms, 12)
    bob = ms.add_user("bob@contoso.example")

    # When the Inbox is listed (default page of 10) and Bob's mailbox is asked for
    first = graph.get("/me/mailFolders/inbox/messages", params={"$select": "subject"}).json()
    second = graph.get(first["@odata.nextLink"]).json()
    denied = graph.get(f"/users/{bob.oid}/messages")
    own = graph.get(f"/users/{USER}/messages", params={"$top": "1"})

    # Then 10 + 2 newest first, and another user's mail is 403 while one's own UPN works
    assert len(first["value"]) == 10
    assert len(second["value"]) == 2
    assert "@odata.nextLink" not in second
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ErrorAccessDenied"
    assert own.status_code == 200


def test_encoded_words_and_html_bodies_are_decoded_as_exchange_shows_them(ms, graph):
    # Given a message with an RFC 2047 subject and sender name, and text + HTML alternatives
    raw = (
        "From: =?utf-8?q?Jos=C3=A9_N=C3=BA=C3=B1ez?= <jose@customer.example>\r\n"
        f"To: {USER}\r\n"
        "Subject: =?utf-8?b?Q2Fmw6kgb24gVHVlc2RheT8=?=\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee you at the caf\u00e9.\r\n"
        "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See you at the <b>caf\u00e9</b>.</p>\r\n"
        "--b1--\r\n"
    ).encode()
    message = ms.deliver(USER, raw)

    # When it is read, as HTML (the default) and as text
    html = graph.get(f"/me/messages/{message.rest_id}").json()
    text = graph.get(
        f"/me/messages/{message.rest_id}", headers={"Prefer": 'outlook.body-content-type="text"'}
    ).json()

    # Then the words are decoded and the body is the HTML part unless text is preferred
    assert html["subject"] == "Caf\u00e9 on Tuesday?"
    assert html["from"]["emailAddress"] == {
        "name": "Jos\u00e9 N\u00fa\u00f1ez",
        "address": "jose@customer.example",
    }
    assert html["body"]["contentType"] == "html"
    assert "<b>caf\u00e9</b>" in html["body"]["content"]
    assert text["body"] == {"contentType": "text", "content": "See you at the caf\u00e9."}
    assert html["bodyPreview"] == "See you at the caf\u00e9."
