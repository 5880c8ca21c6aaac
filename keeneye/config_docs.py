"""Render the settings reference (docs/configuration.md) from the pydantic models themselves,
so the documentation cannot drift from the code (a test compares them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from keeneye.config import Settings

HEADER = """# Configuration

Generated from `keeneye/config.py` by `python -m keeneye.config_docs > docs/configuration.md`
(a test checks they agree). Every setting has a default; override one with an environment variable
`KEENEYE_<NAME>`, nested levels joined by `__`, e.g. `KEENEYE_FACES__EMBEDDER__KIND=human-faceres`,
`KEENEYE_FACES__DETECTOR__SCORE_THRESHOLD=0.6`. The CLI's `--data-dir` sets `data_dir`.

| setting | environment variable | default | description |
| --- | --- | --- | --- |
"""


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        ann: Any = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(_rows(ann, f"{prefix}{name}."))
            continue
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        env = "KEENEYE_" + (prefix + name).replace(".", "__").upper()
        type_name = (
            ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "").replace("pathlib.", "")
        )
        rows.append(
            f"| `{prefix}{name}` | `{env}` | `{default}` | {field.description} (type: `{type_name}`) |"
        )
    return rows


def render() -> str:
    return HEADER + "\n".join(_rows(Settings, "")) + "\n"


if __name__ == "__main__":
    print(render(), end="")
