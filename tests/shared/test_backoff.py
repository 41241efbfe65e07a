from hypothesis import given
from hypothesis import strategies as st

from shared.backoff import Backoff


def test_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(1.0, 8.0, jitter=lambda: 1.0)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0


@given(st.integers(1, 200), st.floats(0, 1))
def test_jitter_keeps_at_least_half_and_never_exceeds_the_ceiling(attempt, jitter):
    delay = Backoff(0.05, 5.0, jitter=lambda: jitter).delay(attempt)
    ceiling = min(5.0, 0.05 * 2 ** min(attempt - 1, 30))
    assert ceiling / 2 <= delay <= ceiling
