"""Policy pieces registered by name, and the parser for composed policy names.

A policy name reads `ORDER[params]+PLACEMENT[params][+backfill][+preempt[params]]
[+recover[strategy=...]][+GATE[params]...]`, e.g. `las[queues=3,threshold_s=3600]+consolidate+backfill`.
Placement defaults to best-fit. Each piece is a dataclass whose fields are its parameters.
Gates hold a job back although it would fit (a budget, a low-carbon hour ahead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
import traceback
import types
import typing
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from altostrat.recovery import STRATEGIES

KINDS = ("order", "placement", "gate")
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
        taken = _REGISTRY[kind].get(name)
        # The same class registering again (a plugin file loaded twice) is fine; another is not.
        if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
            raise PolicyError(
                f"{kind} policy {name!r} is already registered by {taken.__module__}.{taken.__qualname__}; "
                f"register {cls.__qualname__} under another name"
            )
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
    """Import third-party pieces advertised in the `altostrat.policies` entry point group.

    Each entry point names a piece class (`name = package.module:Class`), whose import
    registers it through @register, or a module whose import registers several.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True  # first: a plugin may ask for pieces while it is imported
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        where = f"entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}"
        where += f", package {dist.name})" if dist is not None else ")"
        try:
            obj = ep.load()
        except Exception as exc:
            _entry_points_loaded = False  # fail again next time rather than half-loaded
            raise PolicyError(f"{where}: importing it failed: {_describe(exc)}; fix or uninstall that package") from exc
        if not isinstance(obj, types.ModuleType):
            _check_registered(obj, where)


def load_plugin(spec: str) -> None:
    """Import `module:object` (a module on sys.path or a .py file); the object must be a piece
    class registered with @register (its import registers it, and any others beside it)."""
    module_name, colon, attr = spec.rpartition(":")  # the last colon: Windows paths hold one too
    if not colon or not module_name or not attr:
        raise PolicyError(f"--plugin {spec!r}: write it as module:object or file.py:object, e.g. mypolicies.py:ShortestGang")
    where = f"--plugin {spec!r}"
    if module_name.endswith(".py"):
        module = _import_file(Path(module_name), where)
    else:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            missing = isinstance(exc, ModuleNotFoundError) and f"{module_name}.".startswith(f"{exc.name}.")
            if missing:  # the plugin itself, not something it imports
                raise PolicyError(
                    f"{where}: no module {module_name!r} on the Python path; install its package, "
                    f"or give a file as path/to/file.py:{attr}"
                ) from exc
            raise PolicyError(f"{where}: importing {module_name} failed: {_describe(exc)}") from exc
    if not hasattr(module, attr):
        found = [n for n, v in vars(module).items() if _is_registered(v) and v.__module__ == module.__name__]
        hint = f"; it registers: {', '.join(found)}" if found else "; it registers no policy piece"
        raise PolicyError(f"{where}: {module_name} has no attribute {attr!r}{hint}")
    _check_registered(getattr(module, attr), where)


def _import_file(path: Path, where: str):
    if not path.is_file():
        raise PolicyError(f"{where}: file {path} does not exist")
    resolved = path.resolve()
    # A private module name: a plugin file called json.py or policies.py must not shadow a
    # real module, and loading the same file twice must give the same name.
    tag = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_altostrat_plugin_{stem}_{tag}"
    mod_spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module  # dataclasses resolve string annotations through sys.modules
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PolicyError(f"{where}: running {path} failed: {_describe(exc, resolved)}") from exc
    return module


def _is_registered(obj: Any) -> bool:
    kind = getattr(obj, "kind", None)
    return kind in _REGISTRY and _REGISTRY[kind].get(getattr(obj, "name", None)) is obj


def _check_registered(obj: Any, where: str) -> None:
    if not _is_registered(obj):
        raise PolicyError(
            f"{where}: {getattr(obj, '__qualname__', repr(obj))} is not a registered policy piece; decorate its "
            "dataclass with @register('order' or 'placement', NAME, SOURCE) from altostrat.policy.registry"
        )


def _describe(exc: BaseException, path: Path | None = None) -> str:
    """`file:line: Type: message`, at the plugin's own line when the error passed through it."""
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}"
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        frames = [f for f in frames if Path(f.filename) == path] or frames
    at = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{at}{type(exc).__name__}: {exc}"


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside square brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PolicyError(f"unbalanced ']' in {text!r}: remove it or open it with '[', e.g. las[queues=3]")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PolicyError(f"unclosed '[' in {text!r}: close it with ']', e.g. las[queues=3]")
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _parse_token(token: str) -> tuple[str, dict[str, str]]:
    if "[" not in token:
        return token, {}
    if not token.endswith("]"):
        raise PolicyError(f"{token!r}: parameters go in brackets at the end, e.g. las[queues=3]")
    name, _, body = token[:-1].partition("[")
    if not name.strip():
        raise PolicyError(f"{token!r}: parameters without a piece name; write NAME[key=value], e.g. las[queues=3]")
    params = {}
    for item in split_top(body, ","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise PolicyError(f"{token!r}: parameter {item!r} needs a value, as key=value")
        if not key.isidentifier():
            raise PolicyError(f"{token!r}: {key!r} is not a parameter name; write key=value, e.g. las[queues=3]")
        if key in params:
            raise PolicyError(f"{token!r}: parameter {key!r} is given twice; keep one")
        params[key] = value.strip()
    return name.strip(), params


_ARTICLE = {int: "an int", float: "a float", bool: "a bool (true/false, 1/0 or yes/no)", str: "a string"}
_NONE = ("none", "null")


def _param_type(label: str, cls: type, field: dataclasses.Field) -> tuple[type, bool]:
    """(type, whether None is allowed) of a parameter annotated `T` or `T | None`.

    Annotations are strings under `from __future__ import annotations`, so they are resolved
    in the piece's module.
    """
    try:
        hint = typing.get_type_hints(cls)[field.name]
    except (NameError, AttributeError, TypeError, SyntaxError) as exc:  # an annotation the module cannot resolve
        raise PolicyError(
            f"{label}: cannot read the type of parameter {field.name!r} ({field.type!r}: {exc}); "
            "annotate it int, float, bool or str, optionally | None"
        ) from exc
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(args)
    return (hint if isinstance(hint, type) else str), False


def _convert(label: str, cls: type, field: dataclasses.Field, raw: str) -> Any:
    kind, optional = _param_type(label, cls, field)
    if optional and raw.lower() in _NONE:
        return None
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return kind(raw)
    except ValueError:
        what = _ARTICLE.get(kind, f"a {kind.__name__}") + (" or none" if optional else "")
        raise PolicyError(f"{label}: parameter {field.name}={raw!r} must be {what}") from None


def _construct(name: str, cls: type, raw: dict[str, str]) -> Any:
    """An instance of piece `cls` from its bracket parameters, checked and typed."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise PolicyError(f"{name}: unknown parameter {key!r}; its parameters are: {known}")
        kwargs[key] = _convert(name, cls, fields[key], value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{name}: {exc}") from exc


def build_piece(kind: str, token: str) -> Any:
    name, raw = _parse_token(token)
    registry = pieces(kind)
    cls = registry.get(name)
    if cls is None:
        hint = "; or an option: backfill, preempt, recover, or a gate (altostrat policies list)" if kind == "placement" else ""
        raise PolicyError(f"unknown {kind} policy {name!r}; registered: {', '.join(registry)}{hint}")
    return _construct(name, cls, raw)


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

    # How many queued jobs one pass may consider: a bounded window, as production
    # backfillers have (Slurm's bf_max_job_test), keeps a pass cheap behind a long queue.
    depth: int = 500

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError("depth must be >= 1")




@dataclass(frozen=True)
class Recovery:
    """Where a job whose spot node was revoked may run next.

    anywhere: any node it is allowed on; same-pool: wait for its pool; next-region: any
    region but the one that revoked it; fallback-on-demand: on-demand or reserved nodes only;
    deadline-aware: anywhere while the job's deadline leaves room for its remaining run twice
    over, else as fallback-on-demand (jobs without a deadline: anywhere).
    """

    strategy: str = "anywhere"
    restart_s: float = 60.0  # paid before work resumes: reload the checkpoint, warm up

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        if self.restart_s < 0:
            raise ValueError("restart_s must be >= 0")


@dataclass
class Policy:
    """A composed policy: one order, one placement, optional backfill, preemption, recovery
    and gates."""

    name: str
    order: Any
    placement: Any
    backfill: Backfill | None = None
    preemption: Preemption | None = None
    recovery: Recovery = Recovery()
    gates: tuple = ()

    def pieces(self) -> list[Any]:
        """Every piece, for the run to hand its context to those that take one (`bind`)."""
        return [self.order, self.placement, *self.gates]


def parse_policy(text: str) -> Policy:
    """Build a Policy from its name; errors name the piece and list the choices."""
    import altostrat.policy  # noqa: F401  (registers the built-in pieces)

    if not text.strip():
        raise PolicyError("empty policy name; write ORDER[+PLACEMENT][+backfill][+preempt], e.g. fcfs+best-fit")
    tokens = split_top(text.strip(), "+")
    if not tokens[0]:
        raise PolicyError(f"{text!r}: no order before the first '+'; start with one, e.g. fcfs+best-fit")
    if not all(tokens):
        raise PolicyError(f"{text!r}: an empty piece between '+' signs; remove the extra '+'")
    order = build_piece("order", tokens[0])
    placement = backfill = preemption = None
    recovery = Recovery()
    gates = []
    for token in tokens[1:]:
        base, raw = _parse_token(token)
        if base == "backfill":
            backfill = _construct(base, Backfill, raw)
        elif base == "preempt":
            preemption = _construct(base, Preemption, raw)
        elif base == "recover":
            recovery = _construct(base, Recovery, raw)
        elif base in pieces("gate"):
            gates.append(build_piece("gate", token))
        elif placement is None:
            placement = build_piece("placement", token)
        else:
            raise PolicyError(f"{text!r}: a second placement {token!r}; give one placement at most")
    if placement is None:
        placement = build_piece("placement", "best-fit")
    if preemption is None and getattr(order, "preemptive", False):
        preemption = Preemption()
    return Policy(text.strip(), order, placement, backfill, preemption, recovery, tuple(gates))
