"""No student is named from a match under the open-set threshold: the row mapping checks it
(``observations.observation_rows``) whatever produced the match, and stores each face's quality."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from fake_vision import FakePipeline, scene, seat_vector

from aas_core.services.observations import observation_rows
from aas_core.vision.face_quality import measure_all
from aas_core.vision.matching import Gallery


def _result():  # type: ignore[no-untyped-def]
    pipe = FakePipeline()
    gallery = Gallery(["A1", "A2"], np.stack([seat_vector(0), seat_vector(1)]), pipe.embedder.name)
    img = scene({0, 1})
    return img, pipe.run(img, gallery, 0.5)


def test_a_match_under_the_threshold_names_nobody() -> None:
    _, r = _result()
    assert r.match.assigned == ["A1", "A2"]
    # a matcher that assigned a pair under its own threshold (a bug elsewhere, or NaN) names nobody here
    r.match.assigned_similarity[0] = 0.49
    r.match.assigned_similarity[1] = np.nan
    rows = observation_rows(r, {"A1": 1, "A2": 2}, [None, None], [None, None])
    assert [(o.student_id, o.similarity, o.match_source) for o in rows] == [(None, None, None)] * 2
    assert [t[0] for t in rows[0].top_matches] == ["A1", "A2"]  # the candidates stay, for the review


def test_a_match_at_the_threshold_names_the_student_and_rows_keep_the_quality() -> None:
    img, r = _result()
    q = measure_all(img, r.faces)
    rows = observation_rows(r, {"A1": 1, "A2": 2}, [None, None], [None, None], qualities=q)
    assert [(o.student_id, o.match_source) for o in rows] == [(1, "threshold"), (2, "threshold")]
    r.match = replace(r.match, threshold=0.42)
    r.match.assigned_similarity[0] = np.float32(0.42)  # exactly at the threshold, as the matcher compares
    assert observation_rows(r, {"A1": 1, "A2": 2}, [None, None], [None, None])[0].student_id == 1
    assert [o.quality for o in rows] == [x.score for x in q]
    assert rows[0].quality_figures["face_px"] == 48.0 and set(rows[0].quality_figures["components"]) == {
        "size", "sharpness", "exposure", "detector", "pose"}
    withheld = observation_rows(r, {"A1": 1, "A2": 2}, [None, None], [None, None], withheld={0}, qualities=q)
    assert withheld[0].quality is None and withheld[0].quality_figures is None  # a withheld face keeps its box only
