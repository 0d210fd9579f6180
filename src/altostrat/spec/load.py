"""Read spec files into validated documents, with errors that name file, field and fix."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from altostrat.spec.schema import API_VERSION, KINDS, Model


class SpecError(ValueError):
    """An invalid spec; the message names the file, the field and what to write instead."""


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate_doc(raw: object, source: str) -> Model:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a spec document must be a mapping with apiVersion, kind, metadata and spec")
    if raw.get("apiVersion") != API_VERSION:
        raise SpecError(f"{source}: apiVersion must be {API_VERSION!r} (got {raw.get('apiVersion')!r})")
    kind = raw.get("kind")
    model = KINDS.get(kind)
    if model is None:
        raise SpecError(f"{source}: unknown kind {kind!r}; one of: {', '.join(KINDS)}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SpecError(f"{source}: invalid {kind}:\n" + "\n".join(lines)) from None


def load_docs(path: str | Path) -> list[Model]:
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: no such file")
    try:
        raws = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not raws:
        raise SpecError(f"{path}: holds no document")
    return [validate_doc(raw, f"{path} (document {i + 1})") for i, raw in enumerate(raws)]


def load_one(path: str | Path, kind: str) -> Model:
    docs = [d for d in load_docs(path) if d.kind == kind]
    if len(docs) != 1:
        raise SpecError(f"{path}: expected exactly one {kind} document, found {len(docs)}")
    return docs[0]
