"""What keeneye plans for the Rekognition operations it does not serve, and why.

Used by the coverage ledger (keeneye/aws/coverage.py, docs/rekognition-coverage.md) and by the answer to
an operation that is not served (UnknownOperationException), so that both say the same thing.
"""

from __future__ import annotations

# Operations keeneye means to serve later (video, streams, liveness), and why the rest are not planned.
NOT_YET: dict[str, str] = {
    "CreateFaceLivenessSession": "liveness models are installed; the session flow is not",
    "GetFaceLivenessSessionResults": "liveness models are installed; the session flow is not",
    "DetectLabels": "only the Person label could be offered (person detector)",
    "DetectProtectiveEquipment": "needs a PPE model",
}
_NOT_PLANNED_REASONS: tuple[tuple[str, str], ...] = (
    ("Celebrit", "needs a celebrity database: out of scope for a self-hosted service"),
    ("Project", "Custom Labels training: out of scope"),
    ("Dataset", "Custom Labels training: out of scope"),
    ("CustomLabels", "Custom Labels: out of scope"),
    ("Moderation", "content moderation: out of scope"),
    ("Text", "text detection: out of scope"),
    ("Segment", "video segment detection: out of scope"),
    ("MediaAnalysis", "bulk analysis jobs of Custom Moderation adapters: out of scope"),
    ("LabelDetection", "video labels: out of scope"),
)


def plan_of(operation: str) -> tuple[str, str]:
    """("not yet" | "not planned", why) for an operation keeneye does not implement."""
    if operation in NOT_YET:
        return "not yet", NOT_YET[operation]
    for needle, reason in _NOT_PLANNED_REASONS:
        if needle in operation:
            return "not planned", reason
    return "not planned", ""


def unsupported_message(operation: str, implemented: bool) -> str:
    """The UnknownOperationException message for an operation this server does not serve."""
    if implemented:  # keeneye has it, but this server was built without its service
        return f"{operation} is not available on this server (the service it needs is not configured)"
    status, why = plan_of(operation)
    reason = f" ({why})" if why else ""
    if status == "not yet":
        return (
            f"{operation} is a Rekognition operation keeneye does not support yet{reason}; "
            "see docs/rekognition-coverage.md"
        )
    return (
        f"{operation} is a Rekognition operation keeneye does not plan to support{reason}; "
        "see docs/rekognition-coverage.md"
    )
