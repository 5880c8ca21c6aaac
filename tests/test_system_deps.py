"""tools/system-deps.sh, the set-up's system-package step, with fake dpkg-query, apt-get, id, sudo, node.

The fakes keep the "installed" packages in a file and log every apt-get call, so each case shows what the
script would install, as whom, and what it says when it cannot: nothing on the machine is installed here.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests import pg
from tests.console import browser
from tests.rtsp import rig

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools/system-deps.sh"
TEST_PACKAGES = ["mosquitto", *rig.PACKAGES, *browser.PACKAGES, *pg.PACKAGES]

FAKES = {
    "dpkg-query": 'grep -qxF "${@: -1}" "$STATE/installed" && echo "install ok installed" || exit 1',
    "apt-get": (
        'echo "$(id -u) $*" >> "$STATE/apt.log"\n'
        "after_install=\n"
        'for a in "$@"; do\n'
        '  [[ -n $after_install && $a != -* ]] && echo "$a" >> "$STATE/installed"\n'
        "  [[ $a == install ]] && after_install=1\n"
        "done\n"
        "exit 0"
    ),
    "id": 'echo "$FAKE_UID"',
    "sudo": '[[ $FAKE_SUDO == ok ]] || { echo "sudo: a password is required" >&2; exit 1; }\n'
    '[[ $1 == -n ]] && shift\nFAKE_UID=0 exec "$@"',
    "node": 'echo "$FAKE_NODE"',
    "npm": "true",
}


def run_script(
    tmp_path: Path,
    group: str,
    *,
    installed: list[str],
    uid: int = 1000,
    sudo: bool = False,
    node: str = "v20.11.1",
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[str], set[str]]:
    """Run the script once; its result, the apt-get calls (``"UID ARGS"``) and what is installed after."""
    fake_bin, state, venv = tmp_path / "bin", tmp_path / "state", tmp_path / "venv"
    for d in (fake_bin, state, venv / "bin"):
        d.mkdir(parents=True, exist_ok=True)
    for name, body in FAKES.items():
        (fake_bin / name).write_text(f"#!/bin/bash\n{body}\n")
        (fake_bin / name).chmod(0o755)
    (venv / "bin/python").touch(mode=0o755)  # the venv exists: Python's venv module is not needed
    installed_file = state / "installed"
    if not installed_file.exists():  # a second run in the same tmp_path sees what the first installed
        installed_file.write_text("".join(f"{p}\n" for p in installed))
    environment = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "STATE": str(state),
        "FAKE_UID": str(uid),
        "FAKE_SUDO": "ok" if sudo else "no",
        "FAKE_NODE": node,
        "VENV": str(venv),
        **(env or {}),
    }
    result = subprocess.run(
        ["bash", str(SCRIPT), group],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    log = state / "apt.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls, set(installed_file.read_text().split())


def test_the_script_installs_what_the_rtsp_rig_the_broker_and_the_browser_need() -> None:
    match = re.search(r"^TEST_PACKAGES=\(([^)]*)\)", SCRIPT.read_text(), re.MULTILINE)
    assert match, "TEST_PACKAGES not found in tools/system-deps.sh"
    added = re.findall(r"^TEST_PACKAGES\+=\(([^)]*)\)", SCRIPT.read_text(), re.MULTILINE)
    assert match[1].split() + " ".join(added).split() == TEST_PACKAGES


def test_all_present_is_silent_and_runs_no_apt_get(tmp_path: Path) -> None:
    result, calls, _ = run_script(tmp_path, "test", installed=TEST_PACKAGES)
    assert (result.returncode, result.stdout, result.stderr, calls) == (0, "", "", [])


@pytest.mark.parametrize(
    ("uid", "sudo", "as_uid"), [(0, False, "0"), (1000, True, "0")], ids=["root", "sudo"]
)
def test_root_or_passwordless_sudo_installs_only_what_is_missing(
    tmp_path: Path, uid: int, sudo: bool, as_uid: str
) -> None:
    result, calls, installed = run_script(tmp_path, "test", installed=["python3-gi"], uid=uid, sudo=sudo)
    assert result.returncode == 0, result.stderr
    missing = [p for p in TEST_PACKAGES if p != "python3-gi"]
    assert calls == [
        f"{as_uid} -q -o DPkg::Lock::Timeout=300 update",
        f"{as_uid} -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends {' '.join(missing)}",
    ]
    assert installed >= set(TEST_PACKAGES)
    assert f"installing system packages: {' '.join(missing)}" in result.stderr
    again, calls_again, _ = run_script(tmp_path, "test", installed=[], uid=uid, sudo=sudo)
    assert (again.returncode, again.stderr, calls_again) == (0, "", calls)


def test_without_root_or_sudo_one_message_names_the_command(tmp_path: Path) -> None:
    started = time.monotonic()
    result, calls, _ = run_script(tmp_path, "test", installed=[])
    assert time.monotonic() - started < 10
    assert result.returncode == 1 and calls == []
    packages = " ".join(TEST_PACKAGES)
    assert result.stderr.splitlines() == [
        f"keeneye: missing system packages: {packages}. Install them (needs root), then run make again:",
        f"    sudo apt-get update && sudo apt-get install -y --no-install-recommends {packages}",
    ]


def test_serving_needs_none_of_the_test_packages(tmp_path: Path) -> None:
    result, calls, _ = run_script(tmp_path, "setup", installed=[])
    assert (result.returncode, result.stderr, calls) == (0, "", [])


def test_an_old_node_is_named(tmp_path: Path) -> None:
    result, _, _ = run_script(tmp_path, "test", installed=TEST_PACKAGES, node="v18.19.0")
    assert result.returncode == 1
    assert "the tests need Node.js >= 20" in result.stderr and "v18.19.0" in result.stderr
    # One message naming the command to run (NodeSource's set-up where the release's Node.js is too old).
    command = result.stderr.strip().splitlines()[-1].strip()
    assert command.startswith(("curl -fsSL https://deb.nodesource.com/setup_20.x", "sudo apt-get install"))
    assert "apt-get install -y nodejs" in command


def _ubuntu(tmp_path: Path, version: str) -> Path:
    release = tmp_path / "os-release"
    release.write_text(f'ID=ubuntu\nVERSION_ID="{version}"\n')
    return release


def test_on_ubuntu_apt_is_not_asked_for_chromium_and_one_message_names_the_snap(tmp_path: Path) -> None:
    """Ubuntu has no Chromium in apt (chromium-browser installs the snap): the rest is installed as on
    Debian, then one message says how to get the browser and name it to the tests."""
    others = [p for p in TEST_PACKAGES if p not in browser.PACKAGES]
    env = {"OS_RELEASE": str(_ubuntu(tmp_path, "24.04")), "KEENEYE_CHROMIUM": str(tmp_path / "none")}
    result, calls, installed = run_script(tmp_path, "test", installed=[], uid=0, env=env)
    assert result.returncode == 1
    assert calls[-1].endswith(f"install -y --no-install-recommends {' '.join(others)}")
    assert not set(browser.PACKAGES) & installed
    assert result.stderr.splitlines()[-1] == (
        "    sudo snap install chromium && export KEENEYE_CHROMIUM=/snap/bin/chromium "
        "KEENEYE_CHROMEDRIVER=/snap/bin/chromium.chromedriver"
    )
    # With a browser and driver named (the snap's), the set-up passes.
    for name in ("chromium", "chromium.chromedriver"):
        (tmp_path / name).touch(mode=0o755)
    env |= {
        "KEENEYE_CHROMIUM": str(tmp_path / "chromium"),
        "KEENEYE_CHROMEDRIVER": str(tmp_path / "chromium.chromedriver"),
    }
    again, _, _ = run_script(tmp_path, "test", installed=[], uid=0, env=env)
    assert (again.returncode, again.stderr) == (0, ""), again.stderr


def test_an_old_node_on_ubuntu_24_is_answered_with_apt(tmp_path: Path) -> None:
    for name in ("chromium", "chromedriver"):
        (tmp_path / name).touch(mode=0o755)
    env = {
        "OS_RELEASE": str(_ubuntu(tmp_path, "24.04")),
        "KEENEYE_CHROMIUM": str(tmp_path / "chromium"),
        "KEENEYE_CHROMEDRIVER": str(tmp_path / "chromedriver"),
    }
    result, _, _ = run_script(tmp_path, "test", installed=TEST_PACKAGES, node="v18.19.1", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "    sudo apt-get install -y nodejs npm"
