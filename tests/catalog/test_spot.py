"""Spot revocation defaults: the calibration from availability logs and the hazard of a pool."""

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog import CatalogError
from altostrat.catalog.spot import (MEAN_DOWN_S, NOTICE_S, REVOCATIONS_PER_HOUR, UNMEASURED_DOWN_S, SpotHazard,
                                    SpotStat, calibrate, round_stat, spot_hazard)
from altostrat.cluster.build import load_cluster


def stamp(seconds: int, day: str = "2020-03-01") -> str:
    return f"[{(datetime.fromisoformat(day) + timedelta(seconds=seconds)).isoformat()}.000Z]"


def write(tmp_path, name: str, lines: list[tuple[int, str]], day: str = "2020-03-01"):
    path = tmp_path / name
    path.write_text("".join(f"{stamp(t, day)} {text}\n" for t, text in lines))
    return path


GCP = [
    (0, "Created instance instance0 with 1 GPU(s) of type nvidia-tesla-v100 in zone us-west1-b"),
    (1, "Instance instance0 running in zone us-west1-b"),
    (601, "Instance instance1 creation failed"),
    (602, "Instance instance1 not running in zone us-east1-c"),  # after a failed creation: no revocation
    (603, "Instance instance0 running in zone us-west1-b"),
    (1203, "Instance instance0 not running in zone us-west1-b"),  # revoked at (603 + 1203) / 2 = 903
    (1205, "Successfully deleted instance instance0"),
    (1803, "Created instance instance0 with 1 GPU(s) of type nvidia-tesla-v100 in zone us-west1-b"),  # down 900
    (1804, "Instance instance0 running in zone us-west1-b"),
    (1810, "Created instance instance2 with 4 GPU(s) of type nvidia-tesla-k80 in zone us-east1-c"),
    (1811, "Instance instance2 running in zone us-east1-c"),
    (2404, "Instance instance0 running in zone us-west1-b"),
    (2411, "Instance instance2 not running in zone us-east1-c"),  # revoked at 2111: up 301, then down to the end
    (3600, "Instance instance0 running in zone us-west1-b"),  # still up: up 3600 - 1803
]
AWS = [
    (0, "Created instance i-1 with 8 GPU(s) of type k80 in zone us-east-1c"),
    (30, "Instance with 1 GPU(s) of type v100 creation failed"),
    (600, "Instance i-1 running in zone us-east-1c"),
    (1200, "Instance i-1 not running in zone us-east-1c"),  # revoked at 900
    (1201, "Successfully deleted instance i-1"),
    (1231, "Instance with 8 GPU(s) of type k80 creation failed"),
    (2700, "Created instance i-2 with 8 GPU(s) of type k80 in zone us-east-1c"),  # down 1800
    (3600, "Instance i-2 running in zone us-east-1c"),  # up 900
]


def test_hand_made_logs_give_exact_counts(tmp_path):
    stats = calibrate([write(tmp_path, "gcp_a.out", GCP), write(tmp_path, "aws_b.out", AWS, "2020-03-15")])
    assert stats == [
        SpotStat("aws", None, 0.5, 1, 2.0, 1, 1800.0),
        SpotStat("aws", "K80", 0.5, 1, 2.0, 1, 1800.0),
        # all of GCP: up 903 + 1797 + 301 s; down 900 (completed) + 3600 - 2111 (censored) over 1 period
        SpotStat("gcp", None, 3001 / 3600, 2, 2 / (3001 / 3600), 1, 900.0 + 1489.0),
        SpotStat("gcp", "K80", 301 / 3600, 1, 3600 / 301, 0, None),
        SpotStat("gcp", "V100", 0.75, 1, 1 / 0.75, 1, 900.0),
    ]


def test_embedded_defaults_are_the_calibration_of_the_shared_logs(shared_data):
    stats = calibrate(sorted((shared_data / "prices" / "spot-availability-2020").glob("*.out")))
    per_cloud = {s.cloud: s for s in stats if s.gpu_model is None}
    assert sorted(per_cloud) == ["aws", "gcp"]
    for cloud, stat in per_cloud.items():
        assert round_stat(stat) == (REVOCATIONS_PER_HOUR[cloud], MEAN_DOWN_S[cloud])
        parts = [s for s in stats if s.cloud == cloud and s.gpu_model is not None]
        assert sum(s.revocations for s in parts) == stat.revocations
        assert sum(s.node_hours for s in parts) == pytest.approx(stat.node_hours)
    # what the logs hold (counted with grep): 32 AWS and 445 GCP instances found not running while up
    assert (per_cloud["aws"].revocations, per_cloud["gcp"].revocations) == (32, 445)
    # Azure has no logs: the mean of the two, an assumption
    assert REVOCATIONS_PER_HOUR["azure"] == round((REVOCATIONS_PER_HOUR["aws"] + REVOCATIONS_PER_HOUR["gcp"]) / 2, 4)
    assert MEAN_DOWN_S["azure"] == UNMEASURED_DOWN_S == round((MEAN_DOWN_S["aws"] + MEAN_DOWN_S["gcp"]) / 2)


@pytest.mark.parametrize("lines, problem", [
    ([(0, "Created instance i-1 with 1 GPU(s) of type v100 in zone us-east-1b"), (5, "Instance i-1 is fine")],
     ":2: unknown message 'Instance i-1 is fine'"),
    ([(0, "Instance i-9 running in zone us-east-1b")], ":1: instance i-9 is running but no 'Created instance i-9'"),
    ([(0, "Created instance i-1 with 1 GPU(s) of type v100 in zone us-east-1b"),
      (5, "Instance i-1 running in zone us-east-1c")], ":2: instance i-1 is running in zone us-east-1c but was created"),
    ([(0, "Created instance i-1 with 1 GPU(s) of type v100 in zone us-east-1b"),
      (5, "Instance i-1 not running in zone us-east-1c")], ":2: instance i-1 is reported in zone us-east-1c"),
    ([(0, "Created instance i-1 with 1 GPU(s) of type v100 in zone us-east-1b"),
      (5, "Created instance i-1 with 1 GPU(s) of type v100 in zone us-east-1b")], ":2: instance i-1 created again"),
    ([(10, "Successfully deleted instance i-1"), (5, "Successfully deleted instance i-2")],
     ":2: time 2020-03-01T00:00:05.000Z is before the line above"),
])
def test_malformed_lines_name_file_line_and_problem(tmp_path, lines, problem):
    path = write(tmp_path, "aws_x.out", lines)
    with pytest.raises(CatalogError, match=f"^{str(path)}{problem}".replace("(", r"\(").replace(")", r"\)")):
        calibrate([path])


def test_a_line_without_a_timestamp_and_a_file_without_a_cloud(tmp_path):
    path = tmp_path / "gcp_y.out"
    path.write_text("\n2020-03-01 Created instance x\n")
    with pytest.raises(CatalogError, match=r"gcp_y.out:2: expected '\[YYYY-MM-DDTHH:MM:SS.000Z\] message'"):
        calibrate([path])
    with pytest.raises(CatalogError, match=r"persistent.out: no such file"):
        calibrate([tmp_path / "persistent.out"])
    (tmp_path / "persistent.out").write_text("")
    with pytest.raises(CatalogError, match=r"persistent.out: the file name must start with its cloud and '_'"):
        calibrate([tmp_path / "persistent.out"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 900), st.integers(1, 7200)), min_size=2, max_size=8),
       st.integers(1, 3000))
def test_up_and_down_times_tile_a_slots_timeline(tmp_path_factory, cycles, tail):
    """One slot created, checked, revoked and re-created over and over: its up times and its
    down times (the last one censored by the file's final line) cover the file exactly."""
    lines, t = [], 0
    for checks, interval, gap in cycles:
        lines.append((t, "Created instance instance0 with 2 GPU(s) of type nvidia-tesla-p100 in zone us-east1-c"))
        for _ in range(checks):
            t += interval
            lines.append((t, "Instance instance0 running in zone us-east1-c"))
        t += interval
        lines.append((t, "Instance instance0 not running in zone us-east1-c"))
        t += gap
    lines.append((t + tail, "Instance instance0 creation failed"))
    path = write(tmp_path_factory.mktemp("logs"), "gcp_p.out", lines)
    total = calibrate([path])[0]
    assert total.revocations == len(cycles) and total.down_periods == len(cycles) - 1
    assert total.node_hours * 3600 + total.mean_down_s * total.down_periods == pytest.approx(t + tail)
    assert total.per_hour * total.node_hours == pytest.approx(total.revocations)


def test_pool_values_win_and_defaults_fill_in():
    assert spot_hazard("aws", None, None) == SpotHazard(REVOCATIONS_PER_HOUR["aws"], 120.0, MEAN_DOWN_S["aws"])
    assert spot_hazard("gcp", 0.25, 5.0) == SpotHazard(0.25, 5.0, MEAN_DOWN_S["gcp"])
    assert spot_hazard("lambda", 0.5, None) == SpotHazard(0.5, 30.0, UNMEASURED_DOWN_S)
    with pytest.raises(CatalogError, match="no default spot revocation rate for cloud 'lambda'; set revocationsPerHour"):
        spot_hazard("lambda", None, None)


def test_spot_nodes_carry_their_pools_hazard(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: s}\nspec:\n  pools:\n"
                    "    - {name: a, nodes: 1, instanceType: p3.8xlarge, lifecycle: spot}\n"
                    "    - {name: b, nodes: 1, instanceType: p3.8xlarge, lifecycle: spot, revocationsPerHour: 0.5, "
                    "noticeS: 10}\n"
                    "    - {name: c, nodes: 1, instanceType: p3.8xlarge}\n")
    a, b, c = load_cluster(str(path))[1].nodes
    hazard = lambda n: (n.revocations_per_hour, n.notice_s, n.mean_down_s)  # noqa: E731
    assert hazard(a) == (REVOCATIONS_PER_HOUR["aws"], NOTICE_S["aws"], MEAN_DOWN_S["aws"])
    assert hazard(b) == (0.5, 10.0, MEAN_DOWN_S["aws"])
    assert hazard(c) == (0.0, 0.0, 0.0)
