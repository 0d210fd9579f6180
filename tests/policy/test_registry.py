"""Policy names: parsing, parameter typing and the errors a mistyped name gets."""

from __future__ import annotations  # the probe's annotations are strings, as in the built-in pieces

from dataclasses import dataclass
from typing import ClassVar

import pytest

from altostrat.policy import registry
from altostrat.policy.registry import PolicyError, parse_policy, split_top


@dataclass(frozen=True)
class Probe:
    limit_s: float | None = 1.0
    count: int | None = 4
    strict: bool = False
    label: str = "x"
    dynamic: ClassVar[bool] = False
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (job.submit,)


@pytest.fixture
def probe(monkeypatch):
    """Register `probe` in a copy of the registry, so no other test sees it."""
    parse_policy("fcfs")  # registers the built-in pieces before the copy
    monkeypatch.setattr(registry, "_REGISTRY", {kind: dict(p) for kind, p in registry._REGISTRY.items()})
    registry.register("order", "probe", "a test piece with optional parameters")(Probe)


def test_composed_name_builds_every_piece():
    p = parse_policy("las[queues=4,threshold_s=60]+backfill[depth=5]+consolidate+preempt[restart_s=30]")
    assert (p.order.name, p.order.queues, p.order.threshold_s) == ("las", 4, 60.0)
    assert type(p.order.queues) is int and type(p.order.threshold_s) is float
    assert p.placement.name == "consolidate"
    assert p.backfill.depth == 5
    assert p.preemption.restart_s == 30.0


def test_optional_parameters_take_none_or_a_value(probe):
    p = parse_policy("probe[limit_s=none,count=NULL]")
    assert (p.order.limit_s, p.order.count) == (None, None)
    p = parse_policy("probe[limit_s=2.5,count=7,strict=yes,label=none]")
    assert (p.order.limit_s, p.order.count, p.order.strict, p.order.label) == (2.5, 7, True, "none")
    assert type(p.order.count) is int


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("probe[count=2.5]", "probe: parameter count='2.5' must be an int or none"),
        ("probe[limit_s=soon]", "probe: parameter limit_s='soon' must be a float or none"),
        ("probe[strict=maybe]", "probe: parameter strict='maybe' must be a bool (true/false, 1/0 or yes/no)"),
    ],
)
def test_bad_optional_values_say_what_is_allowed(probe, name, message):
    with pytest.raises(PolicyError) as err:
        parse_policy(name)
    assert str(err.value) == message


def test_commas_inside_brackets_belong_to_one_policy():
    # how `compare --policies` splits its list
    text = "las[queues=3,threshold_s=60]+consolidate, fcfs ,x[a=[1,2],b=3]+backfill[depth=2]"
    assert split_top(text, ",") == [
        "las[queues=3,threshold_s=60]+consolidate", "fcfs", "x[a=[1,2],b=3]+backfill[depth=2]"]
    assert split_top("las[queues=3]+backfill", "+") == ["las[queues=3]", "backfill"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # bad values
        ("las[queues=x]", "las: parameter queues='x' must be an int"),
        ("las[threshold_s=none]", "las: parameter threshold_s='none' must be a float"),
        ("fcfs+backfill[depth=1.5]", "backfill: parameter depth='1.5' must be an int"),
        ("fcfs+preempt[restart_s=soon]", "preempt: parameter restart_s='soon' must be a float"),
        # nested brackets: the inner one is not a parameter
        ("las[[queues=3]]",
         "'las[[queues=3]]': '[queues' is not a parameter name; write key=value, e.g. las[queues=3]"),
        ("las[queues=[3]]", "las: parameter queues='[3]' must be an int"),
        # unknown pieces and parameters
        ("lass", "unknown order policy 'lass'; registered: cost-fair, drf, edf, fcfs, ftf, las, priority, sjf"),
        ("fcfs+bestfit", "unknown placement policy 'bestfit'; registered: best-fit, cheapest, consolidate, "
                         "cost-carbon-time, fgd, first-fit, greenest, hetero, spread; or an option: backfill, preempt, "
                         "recover, or a gate (altostrat policies list)"),
        ("fcfs+hetero[min_speed=2]",
         "hetero: unknown parameter 'min_speed'; its parameters are: min_speedup, wait_below"),
        ("fcfs+backfill[deep=3]", "backfill: unknown parameter 'deep'; its parameters are: depth"),
        ("las[queues=3,queues=4]", "'las[queues=3,queues=4]': parameter 'queues' is given twice; keep one"),
        ("las[queues]", "'las[queues]': parameter 'queues' needs a value, as key=value"),
        # structure
        ("fcfs+spread+consolidate",
         "'fcfs+spread+consolidate': a second placement 'consolidate'; give one placement at most"),
        ("las[queues=3]]",
         "unbalanced ']' in 'las[queues=3]]': remove it or open it with '[', e.g. las[queues=3]"),
        ("las[queues=3", "unclosed '[' in 'las[queues=3': close it with ']', e.g. las[queues=3]"),
        ("las[queues=3]x", "'las[queues=3]x': parameters go in brackets at the end, e.g. las[queues=3]"),
        ("", "empty policy name; write ORDER[+PLACEMENT][+backfill][+preempt], e.g. fcfs+best-fit"),
        ("  ", "empty policy name; write ORDER[+PLACEMENT][+backfill][+preempt], e.g. fcfs+best-fit"),
        ("+spread", "'+spread': no order before the first '+'; start with one, e.g. fcfs+best-fit"),
        ("fcfs++spread", "'fcfs++spread': an empty piece between '+' signs; remove the extra '+'"),
        ("fcfs+", "'fcfs+': an empty piece between '+' signs; remove the extra '+'"),
        ("[queues=3]",
         "'[queues=3]': parameters without a piece name; write NAME[key=value], e.g. las[queues=3]"),
    ],
)
def test_bad_names_say_what_to_fix(name, message):
    with pytest.raises(PolicyError) as err:
        parse_policy(name)
    assert str(err.value) == message
