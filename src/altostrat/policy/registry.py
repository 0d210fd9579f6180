"""Policy pieces registered by name, and the parser for composed policy names.

A policy name reads `ORDER[params]+PLACEMENT[params][+backfill][+preempt[params]]`,
e.g. `las[queues=3,threshold_s=3600]+consolidate+backfill`. Placement defaults to
best-fit. Each piece is a dataclass whose fields are its parameters.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

KINDS = ("order", "placement")
_REGISTRY: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
ENTRY_POINT_GROUP = "altostrat.policies"


class PolicyError(ValueError):
    """A policy name or parameter that cannot be understood; the message says the fix."""


def register(kind: str, name: str, source: str) -> Callable[[type], type]:
    """Class decorator: make a dataclass piece available under `name`.

    `source` names the paper or system the piece follows, shown by `policies list`.
    """
    if kind not in KINDS:
        raise PolicyError(f"unknown policy kind {kind!r}; use one of {', '.join(KINDS)}")

    def wrap(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            raise PolicyError(f"policy piece {name!r} must be a dataclass (its fields are its parameters)")
        cls.name = name
        cls.kind = kind
        cls.source = source
        _REGISTRY[kind][name] = cls
        return cls

    return wrap


def pieces(kind: str) -> dict[str, type]:
    load_entry_points()
    return dict(sorted(_REGISTRY[kind].items()))


_entry_points_loaded = False


def load_entry_points() -> None:
    """Import third-party pieces advertised in the `altostrat.policies` entry point group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()  # importing the object registers it through @register


def load_plugin(spec: str) -> None:
    """Import `module:object` (a module on sys.path or a .py file) so that it registers."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise PolicyError(f"--plugin {spec!r}: write it as module:object, e.g. mypolicies:ShortestGang")
    if module_name.endswith(".py"):
        import importlib.util
        import sys
        from pathlib import Path

        path = Path(module_name)
        if not path.exists():
            raise PolicyError(f"--plugin {spec!r}: file {path} does not exist")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = module
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PolicyError(f"--plugin {spec!r}: cannot import {module_name}: {exc}") from exc
    if not hasattr(module, attr):
        raise PolicyError(f"--plugin {spec!r}: {module_name} has no attribute {attr}")


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside square brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PolicyError(f"unbalanced ']' in {text!r}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PolicyError(f"unclosed '[' in {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _parse_token(token: str) -> tuple[str, dict[str, str]]:
    if "[" not in token:
        return token, {}
    if not token.endswith("]"):
        raise PolicyError(f"{token!r}: parameters go in brackets at the end, e.g. las[queues=3]")
    name, _, body = token[:-1].partition("[")
    params = {}
    for item in split_top(body, ","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise PolicyError(f"{token!r}: parameter {item!r} needs a value, as key=value")
        params[key.strip()] = value.strip()
    return name.strip(), params


def _convert(label: str, field: dataclasses.Field, raw: str) -> Any:
    kind = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str, "bool": bool}.get(
        str(field.type), str
    )
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return kind(raw)
    except ValueError:
        raise PolicyError(f"{label}: parameter {field.name}={raw!r} must be a {kind.__name__}") from None


def build_piece(kind: str, token: str) -> Any:
    name, raw = _parse_token(token)
    registry = pieces(kind)
    cls = registry.get(name)
    if cls is None:
        raise PolicyError(f"unknown {kind} policy {name!r}; registered: {', '.join(registry)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise PolicyError(f"{name}: unknown parameter {key!r}; its parameters are: {known}")
        kwargs[key] = _convert(name, fields[key], value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{name}: {exc}") from exc


@dataclass(frozen=True)
class Preemption:
    """Whole-gang preemption; a resumed job first pays `restart_s` seconds."""

    restart_s: float = 0.0

    def __post_init__(self) -> None:
        if self.restart_s < 0:
            raise ValueError("restart_s must be >= 0")


@dataclass(frozen=True)
class Backfill:
    """EASY backfilling: later jobs may run if they do not delay the blocked head."""

    depth: int = 10_000  # how many queued jobs one pass may consider

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError("depth must be >= 1")


@dataclass
class Policy:
    """A composed policy: one order, one placement, optional backfill and preemption."""

    name: str
    order: Any
    placement: Any
    backfill: Backfill | None = None
    preemption: Preemption | None = None


def _flag(token: str, cls: type) -> Any:
    name, raw = _parse_token(token)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            raise PolicyError(f"{name}: unknown parameter {key!r}; its parameters are: {', '.join(fields)}")
        kwargs[key] = _convert(name, fields[key], value)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise PolicyError(f"{name}: {exc}") from exc


def parse_policy(text: str) -> Policy:
    """Build a Policy from its name; errors name the piece and list the choices."""
    import altostrat.policy  # noqa: F401  (registers the built-in pieces)

    tokens = split_top(text.strip(), "+")
    if not tokens or not tokens[0]:
        raise PolicyError("empty policy name; write ORDER[+PLACEMENT][+backfill][+preempt], e.g. fcfs+best-fit")
    order = build_piece("order", tokens[0])
    placement = backfill = preemption = None
    for token in tokens[1:]:
        base = _parse_token(token)[0]
        if base == "backfill":
            backfill = _flag(token, Backfill)
        elif base == "preempt":
            preemption = _flag(token, Preemption)
        elif placement is None:
            placement = build_piece("placement", token)
        else:
            raise PolicyError(f"{text!r}: a second placement {token!r}; give one placement at most")
    if placement is None:
        placement = build_piece("placement", "best-fit")
    if preemption is None and getattr(order, "preemptive", False):
        preemption = Preemption()
    return Policy(text.strip(), order, placement, backfill, preemption)
