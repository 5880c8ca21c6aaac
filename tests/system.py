"""What a test says when a system program it starts is not installed: the Debian packages and the command.

``make test`` installs them before the tests (tools/system-deps.sh); a test run some other way fails, never
skips, naming them.
"""

from __future__ import annotations


def install_hint(*packages: str) -> str:
    """The command that installs ``packages`` on Debian/Ubuntu, and where the set-up does it."""
    return (
        f"sudo apt-get install -y --no-install-recommends {' '.join(packages)}"
        " (make test installs it: tools/system-deps.sh)"
    )
