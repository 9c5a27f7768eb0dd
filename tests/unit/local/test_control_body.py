"""The doubles' control surface reads one JSON object per call and says plainly when it is not one."""

from __future__ import annotations

import json

import pytest

from local.double_server import Call, ControlError, control_body


def _call(body: bytes) -> Call:
    return Call(method="POST", path="/__double__/x", query={}, headers={}, body=body, params={})


def test_an_object_body_is_returned_and_an_empty_one_is_empty() -> None:
    # Given a control call with a JSON object, and one with no body
    # When they are read
    # Then the object comes back as it was sent, and no body reads as {}
    assert control_body(_call(b'{"seconds": 5}')) == {"seconds": 5}
    assert control_body(_call(b"")) == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "the body must be JSON"), (b"[1, 2]", "the body must be a JSON object")],
)
def test_anything_else_is_a_400_that_says_why(body: bytes, message: str) -> None:
    # Given a control call whose body is not JSON, or JSON that is not an object
    # When it is read
    # Then the double answers 400 with the reason, not a server error
    with pytest.raises(ControlError) as raised:
        control_body(_call(body))
    answer = raised.value.response()
    assert answer.status == 400
    assert json.loads(answer.body) == {"error": message}
