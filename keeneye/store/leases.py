"""Who holds a lease: the owner names of the servers that claim stored-video jobs and stream processors
in a shared database (keeneye/service/video/jobs.py, keeneye/service/streams/processors.py).

An owner is ``<host>:<pid>:<random>``: unique per server process. A lease is given up when its owner
stops (released), or lapses when the owner stops renewing it (``lease_expires_at`` passes: its machine
or process died). On the owner's own machine the death is seen at once: a server treats the leases of
a process of its host that no longer exists as expired (:func:`dead_here`), so a server restarted
after a crash resumes its work without waiting for the lease to run out. Hosts are told apart by name:
servers on several machines need distinct host names (containers sharing a host name and a PID
namespace are one host).
"""

from __future__ import annotations

import os
import secrets
import socket


def host() -> str:
    return socket.gethostname()[:40]


def new_owner() -> str:
    """A fresh owner name for this process (``<host>:<pid>:<8 hex digits>``, at most 64 characters)."""
    return f"{host()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_here(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that has exited (its leases are void)."""
    name, _, rest = owner.rpartition(":")[0].rpartition(":")
    if name != host() or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
