from __future__ import annotations

import gc

from livermore_worker.worker import freeze_warm_heap


def test_freeze_warm_heap_moves_live_objects_out_of_the_collector() -> None:
    kept = [[i] for i in range(1000)]
    try:
        freeze_warm_heap()
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        freeze_warm_heap()  # a second session re-freezes instead of piling up
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
