"""``keeneye keys``: access keys in the database and their IAM-shaped policies (docs/security.md).

The command acts as the operator: its changes are audited under the access key ``cli``. A secret is
printed once, by ``create``; ``list`` never shows one. A running server sees every change at its next
request (it reads keys from the database per request).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from keeneye.cli.common import DataDirOption, fail, load_settings, print_json, user_errors

if TYPE_CHECKING:
    from keeneye.service.governance.keys import AccessKeys

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

ACTOR = "cli"

app = typer.Typer(
    help="Access keys for the server: create (prints the secret once), list, enable, disable, delete, "
    "set-policy. Policies are IAM-shaped JSON (docs/security.md).",
    no_args_is_help=True,
)

PolicyFileOption = typer.Option(
    None, "--policy", help="Policy JSON file (IAM-shaped); without one the key is allowed nothing"
)


def _keys(data_dir: Path | None) -> AccessKeys:
    from keeneye.service.builder import ServiceBuilder

    return ServiceBuilder(load_settings(data_dir)).access_keys


def _read_policy(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        fail("InvalidParameter", f"cannot read policy file {path}: {exc.strerror or type(exc).__name__}")
    try:
        return json.loads(text)
    except ValueError as exc:
        fail("InvalidParameter", f"policy file {path} is not JSON: {exc}")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A unique name for the key (letters, digits, _ . @ + = , -)"),
    policy: Path | None = PolicyFileOption,
    data_dir: Path | None = DataDirOption,
) -> None:
    """Create a key; prints its name, access key id and secret as JSON (the only time the secret is shown).

    Example: keeneye keys create search-only --policy search-only.json
    """
    with user_errors():
        document = None if policy is None else _read_policy(policy)
        info, pair = _keys(data_dir).create(name, document, actor=ACTOR)
        print_json(
            {
                "name": info.name,
                "access_key_id": pair.access_key_id,
                "secret_access_key": pair.secret_access_key,
                "policy": info.policy,
                "note": "store the secret now: it is not shown again",
            }
        )


@app.command("list")
def list_keys(data_dir: Path | None = DataDirOption) -> None:
    """List the keys as JSON: name, access key id, enabled, created/last used, policy (never secrets)."""
    with user_errors():
        print_json([k.to_dict() for k in _keys(data_dir).list()])


@app.command("enable")
def enable(
    name: str = typer.Argument(..., help="The key's name"), data_dir: Path | None = DataDirOption
) -> None:
    """Enable a disabled key."""
    with user_errors():
        print_json(_keys(data_dir).set_enabled(name, True, actor=ACTOR).to_dict())


@app.command("disable")
def disable(
    name: str = typer.Argument(..., help="The key's name"), data_dir: Path | None = DataDirOption
) -> None:
    """Disable a key: requests signed with it are refused (UnrecognizedClientException) until enabled."""
    with user_errors():
        print_json(_keys(data_dir).set_enabled(name, False, actor=ACTOR).to_dict())


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="The key's name"), data_dir: Path | None = DataDirOption
) -> None:
    """Delete a key for good (its audit records stay)."""
    with user_errors():
        print_json(_keys(data_dir).delete(name, actor=ACTOR).to_dict())


@app.command("set-policy")
def set_policy(
    name: str = typer.Argument(..., help="The key's name"),
    policy: Path = typer.Argument(..., help="Policy JSON file (IAM-shaped, docs/security.md)"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Replace a key's policy (validated first: an error names the bad field)."""
    with user_errors():
        print_json(_keys(data_dir).set_policy(name, _read_policy(policy), actor=ACTOR).to_dict())
