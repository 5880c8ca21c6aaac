"""A key without a right sees the action disabled, and it must look disabled: every disabled button
(``button.danger``, ``button.confirm``... included) gets the disabled look and pointer of
keeneye/console/static/console.css, whatever rules come before it (screenshots collection-read-only.png
and review-read-only.png)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.pages import READ_ONLY, Console, new_key
from tests.console.test_review import queue_two_identifications

pytestmark = [pytest.mark.browser, pytest.mark.models, pytest.mark.data]

LOOK = (
    "return Array.from(document.querySelectorAll('button:disabled')).map(b => "
    "[b.textContent.trim(), getComputedStyle(b).cursor, getComputedStyle(b).backgroundColor])"
)
DISABLED = ("not-allowed", "rgb(228, 231, 235)")  # console.css: button[disabled]


def test_disabled_actions_look_disabled_to_a_key_without_the_right(
    console: Console, shared_data: Path
) -> None:
    queue_two_identifications(console.server, shared_data)
    may_look = {"Effect": "Allow", "Action": ["keeneye:ListIdentifications"], "Resource": "*"}
    policy = {**READ_ONLY, "Statement": [*READ_ONLY["Statement"], may_look]}
    reader = new_key(console.server, "reader", policy)
    console.signed_in(reader.access_key_id, reader.secret_access_key)
    looks = {}
    for path in ("/console/collections", "/console/collections/staff", "/console/review"):
        console.open(path)
        looks[path] = [(text, cursor, bg) for text, cursor, bg in console.driver.execute_script(LOOK)]
    assert all(looks.values()), looks  # each page has disabled actions for this key
    wrong = {p: [b for b in buttons if tuple(b[1:]) != DISABLED] for p, buttons in looks.items()}
    assert wrong == {p: [] for p in looks}, wrong
