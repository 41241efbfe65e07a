"""The recorder never stops the feed: rows it cannot buffer are dropped and counted."""

from __future__ import annotations

from services.ingest.recorder import Recorder
from shared.messages import BookDelta, Side
from shared.money import cents, contracts


def delta(seq: int) -> BookDelta:
    return BookDelta(
        market="M-1", event="M", side=Side.YES, price=cents(40), delta=contracts(1), seq=seq
    )


def test_a_full_buffer_drops_the_batch_and_counts_it():
    recorder = Recorder(pool=None)  # type: ignore[arg-type]  # nothing is written here
    recorder.deltas.max_buffer = 2  # Postgres away long enough to fill the buffer
    recorder.record([delta(1), delta(2)], 1_700_000_000_000_000_000)
    assert (recorder.deltas.pending, recorder.dropped) == (2, 0)
    recorder.record([delta(3)], 1_700_000_000_100_000_000)  # no exception reaches the feed
    assert (recorder.deltas.pending, recorder.dropped) == (2, 1)
