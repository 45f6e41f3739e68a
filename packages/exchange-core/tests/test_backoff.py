import random

import pytest

from livermore_exchange_core.backoff import Backoff, BackoffPolicy


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = BackoffPolicy(base_s=1.0, factor=2.0, cap_s=10.0, jitter=0.0)
    assert [policy.ceiling(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.ceiling(10_000) == 10.0


def test_equal_jitter_stays_between_half_and_full_ceiling() -> None:
    policy = BackoffPolicy(base_s=1.0, factor=2.0, cap_s=30.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(12):
        delay = policy.delay(attempt, rng)
        ceiling = policy.ceiling(attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_same_seed_gives_same_delays_and_jitter_spreads_them() -> None:
    first = Backoff(BackoffPolicy(), random.Random(42))
    second = Backoff(BackoffPolicy(), random.Random(42))
    a = [first.next_delay() for _ in range(8)]
    b = [second.next_delay() for _ in range(8)]
    assert a == b
    other = Backoff(BackoffPolicy(), random.Random(43))
    assert [other.next_delay() for _ in range(8)] != a


def test_reset_and_exhaustion() -> None:
    backoff = Backoff(BackoffPolicy(base_s=1, cap_s=8, jitter=0, max_attempts=3), random.Random(1))
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert backoff.exhausted()
    backoff.reset()
    assert not backoff.exhausted()
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize(
    "kwargs", [{"base_s": -1.0}, {"base_s": 5.0, "cap_s": 1.0}, {"factor": 0.5}, {"jitter": 2.0}]
)
def test_invalid_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]
