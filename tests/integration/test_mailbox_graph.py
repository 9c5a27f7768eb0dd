"""`make mailbox PROVIDER=graph` against a running Microsoft double: seeds, prints the steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.mailbox import graph_mailbox
from local.microsoft import MicrosoftDouble
from local.microsoft_wiring import write_state


def test_the_printed_steps_are_microsofts_and_name_a_ca_file_that_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running Microsoft double whose URLs `make run` wrote down
    with MicrosoftDouble(seed=3) as ms:
        state = tmp_path / "microsoft-double.json"
        write_state(ms, "http://127.0.0.1:3999", state)

        # When the mailbox is made
        assert graph_mailbox("demo", seed=True, state_file=state) == 0
        out = capsys.readouterr().out

        # Then the steps connect through Graph's start route with the mailbox as login hint,
        # trusting the double's CA file, which exists while the double runs
        assert '"$API/oauth/graph/start?login_hint=demo@contoso.example"' in out
        (ca_file,) = re.findall(r"--cacert (\S+)", out)
        assert Path(ca_file).is_file()
    # And nothing points the user at Gmail's label listing, which this double does not serve
    assert "Gmail" not in out
    assert "labelIds" not in out
