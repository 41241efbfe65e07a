"""Recent: bounded, oldest forgotten first, a plain mapping otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.recent import Recent


def test_the_oldest_half_is_forgotten_past_the_limit():
    recent: Recent[int, str] = Recent(limit=4)
    for n in range(5):
        recent[n] = str(n)
    assert list(recent.items()) == [(2, "2"), (3, "3"), (4, "4")]
    assert 0 not in recent and recent.get(4) == "4"
    del recent[3]
    assert len(recent) == 2


@given(st.lists(st.integers(0, 50), max_size=300), st.integers(2, 20))
def test_never_more_than_the_limit_and_the_newest_always_kept(keys, limit):
    recent: Recent[int, int] = Recent(limit)
    for key in keys:
        recent[key] = key
        assert len(recent) <= limit and recent[key] == key


def test_a_limit_below_two_is_refused():
    with pytest.raises(ValueError, match="limit"):
        Recent(1)


def test_pinned_keys_are_never_forgotten():
    resting = {0, 3}
    recent: Recent[int, str] = Recent(limit=4, pinned=resting.__contains__)
    for n in range(9):
        recent[n] = str(n)
        assert len(recent) <= 4 + len(resting)
    assert 0 in recent and 3 in recent and 8 in recent
    assert 1 not in recent and 2 not in recent
    resting.clear()
    for n in range(9, 12):
        recent[n] = str(n)
    assert 0 not in recent
