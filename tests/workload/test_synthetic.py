"""The synthetic generator's economics options."""

from altostrat.workload.loaders.synthetic import generate


def test_spot_fraction_and_checkpoints_leave_the_rest_of_a_seed_alone():
    plain = generate(2000, 0.8, 5, 2, 1, 0.3, 3.0)
    spotty = generate(2000, 0.8, 5, 2, 1, 0.3, 3.0, spot=0.5, checkpoint_s=1800.0)
    assert [(j.submit, j.duration, j.tasks, j.tenant, j.deadline) for j in plain] == [
        (j.submit, j.duration, j.tasks, j.tenant, j.deadline) for j in spotty]
    assert not any(j.spot for j in plain) and all(j.checkpoint_s is None for j in plain)
    share = sum(j.spot for j in spotty) / len(spotty)
    assert 0.45 < share < 0.55 and all(j.checkpoint_s == 1800.0 for j in spotty)
