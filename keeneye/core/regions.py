"""Regions: AWS scopes collections, users, stream processors and jobs by region; so does keeneye.

A client picks the region by the one it signs for (SigV4's credential scope). keeneye is one
account on one server, so a resource's region is part of its key in the store:

* a resource of ``us-east-1`` (:data:`HOME_REGION`) is stored under its own name (``demo``), as every
  resource made before regions were kept apart was (their ARNs already said ``us-east-1``);
* a resource of any other region is stored as ``<region>/<name>`` (``ap-southeast-2/demo``).

Names (CollectionId, stream processor Name) cannot hold ``/``, so keys never collide; outside the AWS
API (the native API's ``region`` parameter, the CLI's ``--collection ap-southeast-2/demo``) the
qualified form names a resource of another region. Region names are checked (:func:`check_region`)
before they reach a key, a path or a query: they come from the caller.
"""

from __future__ import annotations

import re
from typing import Final

HOME_REGION: Final = "us-east-1"
# AWS's region names: us-east-1, ap-southeast-2, us-gov-west-1, cn-northwest-1, us-isob-east-1. A
# stricter form than "anything": `--collection team/staff` must be refused, not become a collection of
# a region "team", and a region is part of keys, paths and queries.
_REGION: Final = re.compile(r"[a-z]{2}(?:-[a-z]+){1,3}-[0-9]{1,2}")
SEPARATOR: Final = "/"


def is_region(region: str) -> bool:
    return _REGION.fullmatch(region) is not None


def check_region(region: str) -> str:
    """``region`` if it is a well-formed region name, else ValueError (the caller maps it)."""
    if not is_region(region):
        raise ValueError(f"{region[:40]!r} is not a region name (such as us-east-1)")
    return region


def scoped_key(region: str, name: str) -> str:
    """The store key of ``name`` in ``region`` (see the module docstring). A key already qualified
    with a region is returned normalised (``us-east-1/x`` -> ``x``), so the call is idempotent."""
    if SEPARATOR in name:
        region, name = split_key(name)
    check_region(region)
    return name if region == HOME_REGION else f"{region}{SEPARATOR}{name}"


def split_key(key: str) -> tuple[str, str]:
    """(region, name) of a store key."""
    region, sep, name = key.partition(SEPARATOR)
    if not sep:
        return HOME_REGION, key
    check_region(region)
    return region, name


def in_region(key: str, region: str) -> bool:
    return split_key(key)[0] == region


def name_of(key: str) -> str:
    """The name a client knows (without the region)."""
    return split_key(key)[1]
