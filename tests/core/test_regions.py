"""keeneye.core.regions: a resource's region is part of its store key; region names are checked."""

from __future__ import annotations

import pytest

from keeneye.core.regions import (
    HOME_REGION,
    check_region,
    in_region,
    is_region,
    name_of,
    scoped_key,
    split_key,
)


@pytest.mark.parametrize(
    "region", ["us-east-1", "ap-southeast-2", "us-gov-west-1", "cn-northwest-1", "us-isob-east-1"]
)
def test_aws_region_names_are_regions(region: str) -> None:
    assert is_region(region) and check_region(region) == region


@pytest.mark.parametrize(
    "bad", ["", "team", "US-EAST-1", "us-east", "us-east-123", "us-east-1 ", "a-b-1", "us/east-1", "x" * 100]
)
def test_other_names_are_refused(bad: str) -> None:
    assert not is_region(bad)
    with pytest.raises(ValueError, match="is not a region name") as info:
        check_region(bad)
    assert len(str(info.value)) < 100  # the caller's text is cut short in the message


@pytest.mark.parametrize(
    ("region", "name", "key"),
    [
        (HOME_REGION, "demo", "demo"),  # the home region's keys are bare names, as before regions
        ("ap-southeast-2", "demo", "ap-southeast-2/demo"),
        ("ap-southeast-2", "us-east-1/demo", "demo"),  # a qualified name wins, normalised
        ("us-east-1", "eu-west-1/demo", "eu-west-1/demo"),
        ("eu-west-1", "eu-west-1/demo", "eu-west-1/demo"),  # a key already qualified stays as it is
    ],
)
def test_scoped_key(region: str, name: str, key: str) -> None:
    assert scoped_key(region, name) == key


@pytest.mark.parametrize(
    ("key", "region", "name"),
    [("demo", HOME_REGION, "demo"), ("ap-southeast-2/demo", "ap-southeast-2", "demo")],
)
def test_split_key_undoes_scoped_key(key: str, region: str, name: str) -> None:
    assert split_key(key) == (region, name)
    assert scoped_key(region, name) == key
    assert in_region(key, region) and not in_region(key, "sa-east-1")
    assert name_of(key) == name


@pytest.mark.parametrize(("region", "name"), [("team", "staff"), ("us-east-1", "team/staff")])
def test_a_bad_region_never_reaches_a_key(region: str, name: str) -> None:
    with pytest.raises(ValueError, match="not a region name"):
        scoped_key(region, name)


def test_split_key_checks_the_region_it_reads() -> None:
    with pytest.raises(ValueError, match="not a region name"):
        split_key("team/staff")
