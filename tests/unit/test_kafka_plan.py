from imagelake.lake.layout import BatchId
from imagelake.realtime.kafka import cap_slots, plan_batches

T = "image-uploads"


def test_first_tick_starts_at_the_earliest_offset_and_cuts_batches():
    plan = plan_batches(T, {}, {0: (0, 5), 1: (0, 0), 2: (0, 12)}, batch_size=5, max_batches=10)
    assert plan.batches == [
        BatchId(T, 0, 0, 4),
        BatchId(T, 2, 0, 4),
        BatchId(T, 2, 5, 9),
        BatchId(T, 2, 10, 11),
    ]
    assert plan.cursor == {0: 5, 1: 0, 2: 12}
    assert plan.expired == []


def test_nothing_new_gives_no_batches_and_the_same_cursor():
    plan = plan_batches(T, {0: 5, 1: 0}, {0: (0, 5), 1: (0, 0)}, batch_size=5, max_batches=10)
    assert plan.batches == [] and plan.cursor == {0: 5, 1: 0}


def test_partitions_are_served_round_robin_under_the_cap():
    plan = plan_batches(T, {}, {0: (0, 100), 1: (0, 100)}, batch_size=10, max_batches=3)
    assert [b.partition for b in plan.batches] == [0, 1, 0]
    assert plan.cursor == {0: 20, 1: 10}


def test_expired_offsets_become_a_batch_of_their_own():
    plan = plan_batches(T, {0: 3}, {0: (10, 12)}, batch_size=5, max_batches=5)
    assert plan.expired == [BatchId(T, 0, 3, 9)]
    assert plan.batches == [BatchId(T, 0, 10, 11)]


def test_batches_cover_every_offset_exactly_once():
    cursor: dict[int, int] = {}
    seen: list[tuple[int, int]] = []
    for high in (3, 3, 17, 40):
        plan = plan_batches(T, cursor, {0: (0, high), 1: (0, high // 2)}, batch_size=4, max_batches=2)
        seen += [(b.partition, o) for b in plan.batches for o in range(b.first, b.last + 1)]
        cursor = plan.cursor
    while True:
        plan = plan_batches(T, cursor, {0: (0, 40), 1: (0, 20)}, batch_size=4, max_batches=2)
        if not plan.batches:
            break
        seen += [(b.partition, o) for b in plan.batches for o in range(b.first, b.last + 1)]
        cursor = plan.cursor
    assert sorted(seen) == [(0, o) for o in range(40)] + [(1, o) for o in range(20)]
    assert len(seen) == len(set(seen))


def test_a_partition_without_a_slot_waits_and_its_events_join_a_larger_batch():
    """Backpressure per partition: while a partition's batch still runs, its new events stay on Kafka."""
    marks = {0: (0, 30), 1: (0, 30), 2: (0, 4)}
    plan = plan_batches(T, {0: 10, 1: 10, 2: 0}, marks, batch_size=100, max_batches=12, slots={0: 0, 1: 1})
    assert plan.batches == [BatchId(T, 1, 10, 29), BatchId(T, 2, 0, 3)]  # 2 is not named: no cap
    assert plan.cursor == {0: 10, 1: 30, 2: 4}
    later = plan_batches(T, plan.cursor, {0: (0, 50), 1: (0, 30), 2: (0, 4)}, 100, 12, slots={0: 1})
    assert later.batches == [BatchId(T, 0, 10, 49)]  # everything that waited, in one batch


def test_slots_cap_batches_of_a_long_backlog_but_not_expired_offsets():
    plan = plan_batches(T, {0: 3}, {0: (10, 100)}, batch_size=20, max_batches=12, slots={0: 2})
    assert plan.expired == [BatchId(T, 0, 3, 9)]
    assert plan.batches == [BatchId(T, 0, 10, 29), BatchId(T, 0, 30, 49)]
    assert plan.cursor == {0: 50}


def test_runs_in_flight_cap_gives_the_free_runs_to_the_partitions_most_behind():
    marks = {0: (0, 40), 1: (0, 90), 2: (0, 60)}
    cursor = {0: 10, 1: 20, 2: 0}  # unread: 30, 70, 60
    slots = {0: 1, 1: 1, 2: 1}
    assert cap_slots(slots, cursor, marks, None) == slots  # no cap
    assert cap_slots(slots, cursor, marks, 1) == {0: 0, 1: 1, 2: 0}
    assert cap_slots(slots, cursor, marks, 2) == {0: 0, 1: 1, 2: 1}
    assert cap_slots(slots, cursor, marks, 0) == {0: 0, 1: 0, 2: 0}
    assert cap_slots(slots, cursor, marks, -1) == {0: 0, 1: 0, 2: 0}  # more in flight than the cap
    # a partition already at its own limit, or with nothing unread, takes no free run
    assert cap_slots({0: 1, 1: 0, 2: 1}, {**cursor, 2: 60}, marks, 1) == {0: 1, 1: 0, 2: 0}
    # the plan then cuts one larger batch where the slot is; the others' cursors stay
    plan = plan_batches(T, cursor, marks, 500, 12, cap_slots(slots, cursor, marks, 1))
    assert plan.batches == [BatchId(T, 1, 20, 89)] and plan.cursor == {0: 10, 1: 90, 2: 0}
