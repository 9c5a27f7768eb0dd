"""The ownership backfill (scripts/backfill_owners.py, mailbridge.store.owner_backfill) on moto:
accounts connected before ownership get the `OWNER#` record a disconnect would leave, written
from the account item; resumable after a crash, idempotent, and the account's own item still
decides while it exists."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailbridge.access import Mailbox, Visibility
from mailbridge.config import get_settings
from mailbridge.store.accounts import AccountStore
from tests.fixtures.accounts import CALLER, seed_account
from tests.fixtures.aws import Stack

ROOT = Path(__file__).resolve().parents[2]
TENANT = "acme"
BEA = "bea-5e6f7a8b"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("backfill_owners", ROOT / "scripts" / "backfill_owners.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _owner_items(stack: Stack) -> dict[str, dict[str, Any]]:
    items = stack.table("AccountsTable").scan()["Items"]
    return {
        str(i["sk"]).removeprefix("OWNER#"): {k: v for k, v in i.items() if k not in ("pk", "sk")}
        for i in items
        if str(i["sk"]).startswith("OWNER#")
    }


def test_the_backfill_writes_each_accounts_owner_resumes_after_a_crash_and_is_idempotent(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Given four accounts connected before ownership (no OWNER# item), one of them private, in two
    # tenants, and one disconnected since ownership (its OWNER# item written by the disconnect)
    settings = get_settings()
    table, key = settings.tables.accounts, settings.data_key_id
    mine = seed_account(table, key, tenant=TENANT, address="me@acme.example")
    hers = seed_account(
        table, key, tenant=TENANT, owner=BEA, address="bea@acme.example", visibility=Visibility.PRIVATE
    )
    other = seed_account(table, key, tenant="globex", owner="gus", address="gus@globex.example")
    fourth = seed_account(table, key, tenant=TENANT, owner=BEA, address="bea2@acme.example")
    gone = seed_account(table, key, tenant=TENANT, owner=BEA, address="old@acme.example")
    store = AccountStore(table)
    store.delete_account(TENANT, gone.account_id)
    assert set(_owner_items(stack)) == {gone.account_id}
    argv = ["--accounts", table, "--state", str(tmp_path / "position.json")]
    # When the backfill reads one item a page and crashes after three pages
    import mailbridge.store.owner_backfill as backfill

    monkeypatch.setattr(backfill, "PAGE_SIZE", 1)
    real, calls = backfill.run_page, []

    def crashing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("the machine went away")
        return real(*args)

    monkeypatch.setattr(backfill, "run_page", crashing)
    with pytest.raises(RuntimeError):
        _script().main(argv)
    assert (tmp_path / "position.json").exists()
    # And it is run again
    monkeypatch.setattr(backfill, "run_page", real)
    assert _script().main(argv) == 0
    # Then it carried on and every account has its owner record, as its account item says
    assert "resuming after a saved position" in capsys.readouterr().out
    assert not (tmp_path / "position.json").exists()
    written = _owner_items(stack)
    assert written == {
        mine.account_id: {"owner": CALLER},
        hers.account_id: {"owner": BEA, "visibility": "private"},
        other.account_id: {"owner": "gus"},
        fourth.account_id: {"owner": BEA},
        gone.account_id: {"owner": BEA},
    }
    # And a second run writes the same records again and nothing else
    assert _script().main(argv) == 0
    assert "ownership records written: 4, accounts without an owner: 0" in capsys.readouterr().out
    assert _owner_items(stack) == written
    # And while an account exists its own item decides (a visibility changed after the backfill)
    current = store.get_account(TENANT, hers.account_id)
    store.update_account(
        current.model_copy(update={"visibility": Visibility.FULL}),
        fields=["visibility"],
        expected_version=current.version,
    )
    assert store.mailboxes(TENANT)[hers.account_id] == Mailbox(owner=BEA, visibility=Visibility.FULL)
