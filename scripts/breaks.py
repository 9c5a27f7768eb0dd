"""The thirteen breaks of issue 9, made by hand, each checked to turn at least one test red.

Issue 9 found thirteen behaviours that could be switched off with every test still green. Each is
written down here as a small source patch (exact text -> replacement, at every occurrence). For
each break this script copies the checkout (tracked and untracked files, as they are now, without
.git and ignored files) to a temporary directory, applies that one patch there, runs the tests
that should catch it, and prints a table: break -> red (caught) or green (not caught), with the
failing tests. The checkout itself is never modified.

A row that is green is a hole: write the missing test (of observable behaviour) and run again.
A patch whose text no longer occurs is reported as `stale`: the code moved; update the patch to
the new code, keeping the behaviour it breaks.

Beyond the thirteen, rows whose number ends in a letter are variants (the same behaviour broken
elsewhere) and the deployed tier's own breaks (the deployed-mode switch, TLS verification); rows
F1.. are parsers of outside input whose documented error the property tests
(tests/unit/test_fuzz_inputs.py) must see escape as something else; rows C1.. are answers the
schemathesis contract test (tests/integration/test_api_contract.py) must refuse; rows Q1.. are
redeliveries that must leave the stack as one delivery left it and send nothing twice
(test_queue_redelivery.py, and the seeded three-times tests its docstring lists).

Usage (from the repository root; slow, not part of `make test`):
    .venv/bin/python scripts/breaks.py            # every break, after a baseline run
    .venv/bin/python scripts/breaks.py 3 8 1b     # only these
    .venv/bin/python scripts/breaks.py --list     # the breaks and their tests
    .venv/bin/python scripts/breaks.py --first    # stop each break's tests at the first failure
Exit status: 0 when every break was caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = "layers/mailbridge/mailbridge"


@dataclass(frozen=True)
class Break:
    number: str
    what: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (text as it is, replacement): every occurrence replaced
    tests: tuple[str, ...]


BREAKS: tuple[Break, ...] = (
    Break(
        "1",
        "mail-host guard: private/loopback/link-local check off",
        f"{PKG}/providers/netguard.py",
        (
            (
                "    if not allow_private:\n        for *_, sockaddr in candidates:",
                "    if False:\n        for *_, sockaddr in candidates:",
            ),
        ),
        (
            "tests/unit/providers/test_netguard.py",
            "tests/deployed/test_mail_host_guard.py",
        ),
    ),
    Break(
        "1b",
        "deployed-mode switch on: AllowPrivateMailHosts defaults to true",
        "template.yaml",
        (
            (
                '  AllowPrivateMailHosts:\n    Type: String\n    Default: "false"',
                '  AllowPrivateMailHosts:\n    Type: String\n    Default: "true"',
            ),
        ),
        (
            "tests/deployed/test_configuration.py",
            "tests/deployed/test_mail_host_guard.py::test_connecting_a_mailbox_whose_host_resolves_to_a_refused_address_is_400",
            "tests/deployed/test_plain_text.py::test_connecting_a_plain_text_server_is_400_insecure_not_allowed",
        ),
    ),
    Break(
        "2",
        "plain-text (security: none) refusal outside local mode off",
        f"{PKG}/accounts.py",
        (
            (
                "    if security is Security.NONE and not allow_private:\n        raise Invalid(",
                "    if False:\n        raise Invalid(",
            ),
        ),
        (
            "tests/deployed/test_plain_text.py",
            "tests/deployed/test_through_the_runner.py::test_a_plain_text_mail_server_is_400_insecure_not_allowed",
        ),
    ),
    Break(
        "3",
        "DELETE /accounts/{id} does not delete the account",
        f"{PKG}/accounts.py",
        (
            (
                "    ctx.require(Role.MEMBER)\n    deps.store.delete_account(ctx.tenant_id, account_id)\n",
                "    ctx.require(Role.MEMBER)\n",
            ),
        ),
        (
            "tests/integration/test_account_lifecycle.py::test_delete_removes_the_account_and_its_credentials_and_keeps_the_mail",
            "tests/integration/test_api_accounts.py::test_deleting_an_account_releases_its_address_and_login",
        ),
    ),
    Break(
        "4",
        "?purge=true removes nothing (the purge worker)",
        f"{PKG}/sync/service.py",
        (("    removed = 0\n", "    return 0\n"),),
        (
            "tests/integration/test_account_lifecycle.py::test_delete_with_purge_removes_the_mail_only_this_mailbox_held",
        ),
    ),
    Break(
        "4b",
        "?purge=true removes nothing (the API never queues the purge)",
        f"{PKG}/accounts.py",
        (
            (
                "    if purge:\n        deps.queue.send(PurgeAccount(",
                "    if False:\n        deps.queue.send(PurgeAccount(",
            ),
        ),
        (
            "tests/integration/test_account_lifecycle.py::test_delete_with_purge_removes_the_mail_only_this_mailbox_held",
        ),
    ),
    Break(
        "5",
        "POST /accounts/{id}/sync does not make a failed account pollable",
        f"{PKG}/accounts.py",
        (("    if account.sync.stage is SyncStage.FAILED:\n", "    if False:\n"),),
        (
            "tests/integration/test_account_lifecycle.py::test_a_manual_sync_puts_a_failed_account_back_into_the_poll",
            "tests/integration/test_api_accounts.py::test_asking_for_a_sync_puts_an_account_failed_on_its_credentials_back_into_the_poll",
            "tests/unit/test_accounts_service.py::test_a_sync_request_puts_only_a_failed_account_back_into_the_poll",
        ),
    ),
    Break(
        "6",
        "subject threading of replies without References/In-Reply-To off",
        f"{PKG}/sync/threads.py",
        (
            (
                "    if thread_id is None and subject and _is_reply_or_forward(message.subject):",
                "    if False:",
            ),
        ),
        ("tests/integration/test_ingest_behaviour.py", "tests/unit/test_threads_subject.py"),
    ),
    Break(
        "7",
        "PUT /features with unchanged flags bumps the version",
        f"{PKG}/features.py",
        (("        if merged == current.flags:\n            return current\n", ""),),
        (
            "tests/integration/test_api_features.py::test_a_put_that_changes_nothing_keeps_the_version_and_announces_nothing",
        ),
    ),
    Break(
        "8",
        "KMS encryption context dropped from envelope encryption",
        f"{PKG}/crypto.py",
        (
            (", EncryptionContext=dict(context)", ""),  # GenerateDataKey and Decrypt
            (
                '    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()',
                '    return b""',
            ),
        ),
        ("tests/integration/test_crypto.py",),
    ),
    Break(
        "9",
        "the 5-minute poll does not skip accounts whose credentials failed (the skip)",
        f"{PKG}/sync/service.py",
        (('    if account.sync.reason == "auth_failed" and request.reason == "poll":', "    if False:"),),
        (
            "tests/integration/test_account_lifecycle.py::test_rejected_credentials_keep_the_account_out_of_every_poll",
        ),
    ),
    Break(
        "9b",
        "the 5-minute poll does not skip accounts whose credentials failed (the poll index)",
        f"{PKG}/sync/service.py",
        (('        pollable=state.reason != "auth_failed",', "        pollable=True,"),),
        (
            "tests/integration/test_account_lifecycle.py::test_rejected_credentials_keep_the_account_out_of_every_poll",
        ),
    ),
    Break(
        "10",
        "the conditional create of an email's location made unconditional",
        f"{PKG}/store/emails.py",
        (('\n                ConditionExpression="attribute_not_exists(pk)",\n', "\n"),),
        (
            "tests/integration/test_ingest_behaviour.py::test_a_racing_second_run_does_not_write_the_location_again",
        ),
    ),
    Break(
        "11",
        "the folder cursor's condition loosened: it may move backwards",
        f"{PKG}/store/accounts.py",
        (
            (
                '"attribute_not_exists(#st) OR #st.uidvalidity <> :v OR #st.last_uid <= :u"',
                '"attribute_not_exists(#st) OR #st.uidvalidity <> :v OR attribute_exists(#st)"',
            ),
        ),
        ("tests/integration/test_folder_cursor.py",),
    ),
    Break(
        "12",
        "the outbox retries a retryable failure forever",
        "functions/outbox/app.py",
        (("        if not exc.retryable or attempt >= MAX_ATTEMPTS:", "        if not exc.retryable:"),),
        (
            "tests/integration/test_outbox.py::test_a_send_that_keeps_failing_transiently_gives_up_after_the_last_attempt",
        ),
    ),
    Break(
        "13",
        "expunge detection by UID diff (no CONDSTORE/QRESYNC) off",
        f"{PKG}/sync/engine.py",
        (("    elif server_messages < state.messages_stored:", "    elif False:"),),
        ("tests/integration/test_sync_without_condstore.py",),
    ),
    Break(
        "T",
        "deployed tier: TLS certificates not verified (adapters told allow_insecure)",
        f"{PKG}/accounts.py",
        (("allow_insecure=allow_private and server.security is Security.NONE,", "allow_insecure=True,"),),
        ("tests/deployed/test_tls_verification.py",),
    ),
    Break(
        "N",
        "normalize rejects every message (the corpus test must fail)",
        f"{PKG}/mime/parse.py",
        (
            (
                "    try:\n        return _normalize(bytes(raw), internal_date, max_size)\n",
                '    try:\n        raise MimeError("broken on purpose", code=errors.UNPARSEABLE)\n',
            ),
        ),
        ("tests/integration/test_mime_corpus.py::test_every_message_normalizes_as_the_snapshot_says",),
    ),
    Break(
        "F1",
        "fuzz: Graph notification body that is not JSON escapes as ValueError",
        f"{PKG}/webhooks/graph.py",
        (
            (
                "except (ValueError, ValidationError, RecursionError):",
                "except (ValidationError, RecursionError):",
            ),
        ),
        ("tests/unit/test_fuzz_inputs.py::test_a_graph_notification_batch_is_read_or_invalid_notification",),
    ),
    Break(
        "F2",
        "fuzz: Gmail push body that is not JSON or base64 escapes",
        f"{PKG}/webhooks/gmail.py",
        (
            (
                "except (ValueError, ValidationError, RecursionError, binascii.Error):",
                "except (ValidationError, RecursionError):",
            ),
        ),
        ("tests/unit/test_fuzz_inputs.py::test_a_gmail_push_body_is_read_or_invalid_push",),
    ),
    Break(
        "F3",
        "fuzz: Salesforce outbound body that is not well-formed XML escapes as ExpatError",
        f"{PKG}/crm/remote/salesforce_outbound.py",
        (("    except expat.ExpatError:", "    except KeyError:"),),
        (
            "tests/unit/test_fuzz_inputs.py::test_a_salesforce_outbound_message_is_read_or_refused_with_its_code",
        ),
    ),
    Break(
        "F4",
        "fuzz: HubSpot event of the wrong shape escapes as ValidationError",
        f"{PKG}/crm/remote/hubspot_webhooks.py",
        (("    except ValidationError as error:", "    except KeyError as error:"),),
        ("tests/unit/test_fuzz_inputs.py::test_hubspot_events_are_read_or_refused_with_their_code",),
    ),
    Break(
        "F5",
        "fuzz: ICS the parser refuses escapes instead of being read piece by piece",
        f"{PKG}/calendar/ics.py",
        (
            (
                "    except Exception:  # noqa: BLE001 - third-party parser on untrusted input: "
                "read it piece by piece\n        skipped = []",
                "    except KeyError:\n        skipped = []",
            ),
        ),
        ("tests/unit/test_fuzz_inputs.py::test_an_ics_file_is_read_or_refused_as_not_icalendar",),
    ),
    Break(
        "F6",
        "fuzz: JSON-Logic evaluation error of the engine escapes as its own type",
        f"{PKG}/automations/conditions.py",
        (
            (
                'code="invalid_data") from exc\n        except datalogic_py.DataLogicError as exc:',
                'code="invalid_data") from exc\n        except KeyError as exc:',
            ),
        ),
        ("tests/unit/test_fuzz_inputs.py::test_a_json_logic_rule_evaluates_or_raises_a_logic_error",),
    ),
    Break(
        "C1",
        "contract: GET /me fails inside the function (API Gateway answers 500)",
        f"{PKG}/api/me.py",
        (("    return current_tenant(router)", '    raise RuntimeError("broken on purpose")'),),
        ("tests/integration/test_api_contract.py::test_operation_keeps_its_contract[GET /me]",),
    ),
    Break(
        "C2",
        "contract: error bodies lose their documented shape (ErrorResponse's `error` object)",
        f"{PKG}/api/errors.py",
        (
            (
                '    body = {"error": {"code": code, "message": message, "details": details}}',
                '    body = {"code": code, "message": message, "details": details}',
            ),
        ),
        (
            "tests/integration/test_api_contract.py::test_operation_keeps_its_contract"
            "[GET /crm/contacts/{contact_id}]",
        ),
    ),
    Break(
        "C3",
        "contract: NotFound answered with a status no operation documents (410)",
        f"{PKG}/api/errors.py",
        (("    (NotFound, 404),", "    (NotFound, 410),"),),
        (
            "tests/integration/test_api_contract.py::test_operation_keeps_its_contract"
            "[GET /crm/contacts/{contact_id}]",
        ),
    ),
    Break(
        "Q1",
        "redelivery: a notification already announced is announced again",
        f"{PKG}/notifications/service.py",
        (
            (
                '        if item.get("channel") == "in_app" and item.get("announced") is False:',
                '        if item.get("channel") == "in_app":',
            ),
        ),
        (
            "tests/integration/test_queue_redelivery.py::test_a_record_delivered_three_times_acts_once[notifications]",
        ),
    ),
    Break(
        "Q2",
        "redelivery: the match function's idempotency (Powertools idempotent_function) off",
        "functions/match/app.py",
        (
            (
                "@idempotent_function(  # type: ignore[untyped-decorator]\n"
                '    data_keyword_argument="task",\n'
                "    persistence_store=persistence,\n"
                "    config=idempotency,\n"
                "    output_serializer=DataclassSerializer(MatchOutcome),\n"
                ")\n",
                "",
            ),
        ),
        (
            "tests/integration/test_queue_redelivery.py::test_a_record_delivered_three_times_acts_once[match-email]",
            "tests/integration/test_queue_redelivery.py::test_a_record_delivered_three_times_acts_once[match-contact]",
        ),
    ),
    Break(
        "Q3",
        "redelivery: a privacy step the job is one ahead of re-sends the next step though it went out",
        f"{PKG}/privacy/service.py",
        (
            (
                '    if step == message.step + 1 and int(job.get("sent_step", -1)) != step:',
                "    if step == message.step + 1:",
            ),
        ),
        (
            "tests/integration/test_privacy.py::test_every_step_of_a_job_delivered_three_times_runs_once[erase]",
            "tests/integration/test_privacy.py::test_every_step_of_a_job_delivered_three_times_runs_once[export]",
        ),
    ),
    Break(
        "Q4",
        "redelivery: a snooze wake-up runs whatever the snooze record's state",
        f"{PKG}/snooze/service.py",
        (
            (
                '    if record is None or record.get("state") != "snoozed" or str(record["until"]) != until:',
                '    if record is None or str(record["until"]) != until:',
            ),
        ),
        (
            "tests/integration/test_api_followups.py::test_a_due_reminder_delivered_three_times_wakes_or_reminds_once[snooze]",
        ),
    ),
    Break(
        "Q5",
        "redelivery: a follow-up reminder ignores the flag's reminded_at",
        f"{PKG}/followups/service.py",
        (('        or flag.get("reminded_at")\n', "        or False\n"),),
        (
            "tests/integration/test_api_followups.py::test_a_due_reminder_delivered_three_times_wakes_or_reminds_once[follow_up]",
        ),
    ),
    Break(
        "Q6",
        "redelivery: the notifier's fan-out unguarded (no idempotency record)",
        "functions/notifier/app.py",
        (
            (
                "    delivery = notify(record.body, notify_deps(), guard)",
                "    delivery = notify(record.body, notify_deps())",
            ),
        ),
        (
            "tests/integration/test_realtime.py::test_an_event_delivered_three_times_posts_one_frame_to_each_connection[email.received]",
            "tests/integration/test_realtime.py::test_an_event_delivered_three_times_posts_one_frame_to_each_connection[notification.created]",
        ),
    ),
    Break(
        "Q7",
        "redelivery: an automation run that finished is run again",
        f"{PKG}/automations/execution.py",
        (
            (
                '    if existing is not None and existing.status != "running":',
                '    if False and existing is not None and existing.status != "running":',
            ),
        ),
        (
            "tests/integration/test_automations_execution.py::test_a_record_delivered_three_times_runs_the_rule_once_and_posts_once[event]",
            "tests/integration/test_automations_execution.py::test_a_record_delivered_three_times_runs_the_rule_once_and_posts_once[cron]",
        ),
    ),
    Break(
        "Q8",
        "redelivery: CRM activity ignores its record of logged Message-IDs",
        f"{PKG}/crm/integrations/activity.py",
        (
            (
                "    done = deps.logged.logged(tenant_id, integration_id, pending)\n",
                "    done = deps.logged.logged(tenant_id, integration_id, pending) and set()\n",
            ),
        ),
        (
            "tests/integration/test_crm_activity.py::test_a_linked_email_delivered_three_times_is_logged_once_and_asks_salesforce_once",
        ),
    ),
    Break(
        "Q9",
        "redelivery: a CRM contact sync run that ended is run again",
        f"{PKG}/crm/sync/service.py",
        (
            (
                '        if current.state != "running":\n'
                "            return current  # a redelivery after the run ended\n",
                "",
            ),
        ),
        (
            "tests/integration/test_crm_contact_sync.py::test_a_record_delivered_three_times_to_the_function_syncs_once[run]",
        ),
    ),
    Break(
        "Q10",
        "redelivery: a tenant's nudge scan leaves the threads it announced in the waiting index",
        f"{PKG}/nudges/service.py",
        (
            (
                "    for thread_id, email_id in announced:\n"
                "        deps.nudges.stop_waiting(tenant_id, thread_id, email_id)\n",
                "    for thread_id, email_id in announced:\n        pass\n",
            ),
        ),
        ("tests/integration/test_api_nudges.py::test_a_tenant_scan_delivered_three_times_nudges_once",),
    ),
    Break(
        "Q11",
        "redelivery: a CRM sync message without a run (fan-out, targeted pull) handled on every delivery",
        "functions/crmsync/app.py",
        (
            (
                '    handle_once(sqs={"message_id": record.messageId}, message=record.body)',
                "    handle(record.body)",
            ),
        ),
        (
            "tests/integration/test_crm_contact_sync.py::test_a_record_delivered_three_times_to_the_function_syncs_once[targeted]",
            "tests/integration/test_crm_contact_sync.py::test_a_record_delivered_three_times_to_the_function_syncs_once[fan_out]",
        ),
    ),
    Break(
        "Q12",
        "redelivery: a reply's wake-up unguarded (both state checks off, the reply lookup kept)",
        f"{PKG}/snooze/service.py",
        (
            (
                '    if record is None or record.get("state") != "snoozed" or str(record["until"]) != until:',
                '    if record is None or str(record["until"]) != until:',
            ),
            (
                '        if record is None or record.get("state") != "snoozed"'
                ' or not record.get("wake_on_reply"):',
                '        if record is None or not record.get("wake_on_reply"):',
            ),
            ('    deps.snoozes.delete_reply_lookup(tenant_id, str(record["thread_id"]), target_id)\n', ""),
        ),
        (
            "tests/integration/test_api_followups.py::test_a_due_reminder_delivered_three_times_wakes_or_reminds_once[reply]",
        ),
    ),
    Break(
        "Q13",
        "redelivery: a campaign sync pushes without comparing with what it stored last time",
        f"{PKG}/crm/integrations/campaigns.py",
        (
            (
                "    if stored is not None and stored.fields_hash == digest and stored.members == wanted:",
                "    if False:",
            ),
        ),
        (
            "tests/integration/test_crm_activity.py::test_a_campaign_sync_delivered_three_times_writes_the_campaign_once",
        ),
    ),
)

_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")


def copy_checkout(target: Path) -> None:
    """The checkout's files as they are now (tracked and untracked, not ignored), into `target`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def apply(work: Path, item: Break) -> str | None:
    """Patch the work copy; the first text that no longer occurs, if any."""
    path = work / item.path
    text = path.read_text()
    for old, new in item.edits:
        if old not in text:
            return old.strip().splitlines()[0]
        text = text.replace(old, new)
    path.write_text(text)
    return None


def restore(work: Path, item: Break) -> None:
    shutil.copy2(ROOT / item.path, work / item.path)


def run_tests(work: Path, tests: tuple[str, ...], *, first: bool = False) -> tuple[int, list[str]]:
    env = dict(os.environ)
    env.setdefault("MAILBRIDGE_CORPUS", str(ROOT.parent / "shared" / "data"))
    env.pop("PYTHONPATH", None)  # imports come from the work copy (pyproject's pythonpath)
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", "-rfE"),
            *(["-x"] if first else []),
            *tests,
        ],
        cwd=work,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    failed = [m.group(2) for line in done.stdout.splitlines() if (m := _FAILED.match(line))]
    return done.returncode, list(dict.fromkeys(failed))


def show(rows: list[tuple[str, str, str, list[str]]]) -> None:
    print()
    print(f"{'break':<6} {'result':<7} what / failing tests")
    for number, result, what, failed in rows:
        print(f"{number:<6} {result:<7} {what}")
        for name in failed[:6]:
            print(f"{'':<15}{name}")
        if len(failed) > 6:
            print(f"{'':<15}... and {len(failed) - 6} more")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/breaks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("numbers", nargs="*", help="break numbers to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the breaks and their tests")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without any break")
    parser.add_argument(
        "--first",
        action="store_true",
        help="stop each break's tests at the first failure (faster; names one test)",
    )
    args = parser.parse_args(argv)
    chosen = [b for b in BREAKS if not args.numbers or b.number in args.numbers]
    unknown = set(args.numbers) - {b.number for b in BREAKS}
    if unknown:
        raise SystemExit(f"breaks: no break {', '.join(sorted(unknown))}")
    if args.list:
        for b in chosen:
            print(f"{b.number:<4} {b.what}\n     {b.path}\n     tests: {' '.join(b.tests)}")
        return 0
    rows: list[tuple[str, str, str, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="mailbridge-breaks-") as tmp:
        work = Path(tmp)
        copy_checkout(work)
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for b in chosen for t in b.tests))
            print(f"baseline: {len(tests)} test paths without any break", flush=True)
            code, failed = run_tests(work, tests, first=args.first)
            if code != 0:
                show([("-", "red", "baseline (no break): these must pass first", failed)])
                return 1
        for item in chosen:
            print(f"break {item.number}: {item.what}", flush=True)
            stale = apply(work, item)
            if stale is not None:
                rows.append((item.number, "stale", f"{item.what} (no longer in {item.path}: {stale!r})", []))
                continue
            try:
                code, failed = run_tests(work, item.tests, first=args.first)
            finally:
                restore(work, item)
            result = "red" if code == 1 and failed else "green" if code == 0 else f"exit {code}"
            rows.append((item.number, result, item.what, failed))
            print(f"  {result}: {', '.join(failed[:3]) or 'no test failed'}", flush=True)
    show(rows)
    return 0 if all(r[1] == "red" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
