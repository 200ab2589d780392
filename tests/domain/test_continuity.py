from aas_core.domain.continuity import Seen, recover_by_seat

A = (100.0, 100.0, 140.0, 140.0)
B = (400.0, 100.0, 440.0, 140.0)
C = (700.0, 100.0, 740.0, 140.0)


def test_unknown_face_in_a_students_seat_is_recovered() -> None:
    snaps = [[Seen(A, "s1", "s1", 0.6)], [Seen(A, None, "s1", 0.35)], [Seen(A, "s1", "s1", 0.5)]]
    assert recover_by_seat(snaps, loose_threshold=0.31) == [{}, {"s1": 0}, {}]


def test_no_recovery_elsewhere_below_loose_threshold_or_when_already_present() -> None:
    snaps = [[Seen(A, "s1", "s1", 0.6)],
             [Seen(B, None, "s1", 0.40)],  # another seat: no
             [Seen(A, None, "s1", 0.20)],  # too weak: no
             [Seen(A, None, "s1", 0.35), Seen(C, "s1", "s1", 0.7)]]  # s1 already seen here: no
    assert recover_by_seat(snaps, loose_threshold=0.31) == [{}, {}, {}, {}]


def test_a_student_never_seen_confidently_is_never_recovered() -> None:
    snaps = [[Seen(A, None, "s2", 0.39)], [Seen(A, None, "s2", 0.39)]]
    assert recover_by_seat(snaps, loose_threshold=0.31) == [{}, {}]


def test_an_uncertain_match_anchors_no_seat() -> None:
    """A match the decision discounts (similarity under the course's min_confidence) is no
    confident sighting: seat continuity must not make that student present from it."""
    snaps = [[Seen(A, "s1", "s1", 0.45, similarity=0.45)], [Seen(A, None, "s1", 0.35)], [Seen(A, None, "s1", 0.35)]]
    assert recover_by_seat(snaps, loose_threshold=0.31, min_anchor_similarity=0.5) == [{}, {}, {}]
    assert recover_by_seat(snaps, loose_threshold=0.31) == [{}, {"s1": 0}, {"s1": 0}]
    by_hand = [[Seen(A, "s1", "s1", 0.2, similarity=None)], [Seen(A, None, "s1", 0.35)]]  # named by a person
    assert recover_by_seat(by_hand, loose_threshold=0.31, min_anchor_similarity=0.5) == [{}, {"s1": 0}]
