"""docs/rekognition-coverage.md lists every operation of the service model and is current."""

from __future__ import annotations

from keeneye.aws import coverage
from keeneye.aws.handlers import OPERATIONS
from keeneye.aws.model import operation_names
from tests.conftest import REPO


def test_coverage_doc_is_current() -> None:
    doc = (REPO / "docs/rekognition-coverage.md").read_text()
    assert doc == coverage.render(), "run: python -m keeneye.aws.coverage > docs/rekognition-coverage.md"


def test_every_operation_listed_with_a_status() -> None:
    names = operation_names()
    assert len(names) >= 75
    doc = (REPO / "docs/rekognition-coverage.md").read_text()
    for name in names:
        assert f"| {name} | " in doc, name
        assert coverage.status_of(name)[0] in ("supported", "not yet", "not planned")
    assert set(OPERATIONS) <= set(names)
    assert {n for n in names if coverage.status_of(n)[0] == "supported"} == set(OPERATIONS)
