"""Open-set naming rules for small and dim faces, measured face by face on the hard benchmark.

    .venv/bin/python benchmarks/open_set_rules.py [--conditions lecture_hall crowded_rows clean]
        [--seeds 11 12 13 14] [--frames 5] [--models-dir data/models-mbf] [--occluded-templates]
        [--save faces.jsonl] [--load faces.jsonl ...]

Each session of ``benchmarks/lecture_hall.py`` (same rooms, seeds, enrollment) runs through
``SessionService.run_from_images`` as ``aas session run`` does, and every fused face of every
snapshot is kept with its ground-truth identity and its score against each student of the
roster (the product's gallery: portraits and classroom templates). Then, with no further
inference, it prints:

1. **By face size**: the score of enrolled faces for their own student, and the best score an
   *unknown person* reaches: strangers, and every enrolled face scored against the roster
   without its own student ("leave-own-out": a classmate who is not enrolled, ~5x more probes
   than strangers). Tells whether small faces could have a lower threshold.
2. **Face rules**: faces named rightly / wrongly and unknown people named, for the product's
   threshold, lower ones, and a *lead* rule (a face under the threshold named when it scores
   >= ``lo`` and leads every other student by >= ``lead``).
3. **Seat agreement**: a student named from the faces of one seat (one person over the three
   snapshots) when they are the best candidate, over ``lo`` with a lead, in >= 2 snapshots.
4. Statuses right per condition (what the product decided).

``--occluded-templates`` adds two classroom-template views with the lower 30 % of the face hidden
(``vision.templates.View.cover_below``: a head in the row in front) to the enrollment, the
lever of docs/EVALUATION.md "Open-set rules and occluded templates". Fixed seeds; the default
ones are the calibration seeds that ``benchmarks/lecture_hall.py`` does not report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lecture_hall import run_one  # noqa: E402

from aas_core.config import PROJECT_ROOT  # noqa: E402
from aas_core.services import enrollment  # noqa: E402
from aas_core.tools.bench import default_dataset  # noqa: E402
from aas_core.tools.lecture_hall import CONDITIONS, make_hard_session  # noqa: E402
from aas_core.tools.synthetic import scrfd_locator  # noqa: E402
from aas_core.vision.nms import box_iou  # noqa: E402
from aas_core.vision.pipeline import Pipeline, PipelineResult  # noqa: E402
from aas_core.vision.profiles import resolve_profile  # noqa: E402
from aas_core.vision.templates import DEFAULT_VIEWS, View  # noqa: E402

#: The occluded views of ``--occluded-templates``: dim and noisy, 32 and 44 px, lower 30 % hidden.
OCCLUDED_VIEWS = tuple(View(px, gain=0.55, gamma=1.25, noise_sigma=6.0, jpeg_quality=65, cover_below=0.3)
                       for px in (32.0, 44.0))


def session_faces(cond: str, seed: int, frames: int, pipe: Pipeline, locate) -> list[dict]:  # type: ignore[no-untyped-def]
    """Run one hard session; one record per fused face (truth, size, scores) and one for the session."""
    hs = make_hard_session(default_dataset(), locate, CONDITIONS[cond], seed=seed, burst=frames)
    out: list[dict] = []

    def on_result(k: int, result: PipelineResult) -> None:
        if result.match is None:
            return
        truth = hs.bursts[k].faces
        tb = np.array([f.box for f in truth], np.float32).reshape(-1, 4)
        iou = box_iou(result.faces.xyxy, tb) if len(tb) and len(result.faces) else np.zeros((len(result.faces), 0))
        for i in range(len(result.faces)):
            j = int(iou[i].argmax()) if iou.shape[1] else -1
            who = truth[j].identity if j >= 0 and iou[i, j] >= 0.3 else None
            x1, y1, x2, y2 = (float(v) for v in result.faces.xyxy[i])
            out.append({"cond": cond, "seed": seed, "k": k, "truth": who, "enrolled": who in hs.truth,
                        "size": min(x2 - x1, y2 - y1), "threshold": float(result.threshold),
                        "ids": list(result.match.student_ids),
                        "scores": [round(float(v), 4) for v in result.match.scores[i]]})

    r = run_one(hs, pipe, frames, on_result=on_result)
    out.append({"session": True, "cond": cond, "seed": seed, "right": int(r["right"]), "students": int(r["students"])})
    return out


def top_two(scores: np.ndarray) -> tuple[float, float]:
    o = np.sort(scores)[::-1]
    return float(o[0]), float(o[1]) if len(o) > 1 else -1.0


def probes(faces: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """(genuine, unknown): genuine = (top, second, best is own, size); unknown = (top, second, kind, size)."""
    genuine, unknown = [], []
    for r in faces:
        s = np.array(r["scores"], np.float64)
        if r["enrolled"]:
            own = r["ids"].index(r["truth"])
            top, second = top_two(s)
            genuine.append((top, second, int(np.argmax(s)) == own, r["size"]))
            unknown.append((*top_two(np.delete(s, own)), "leave-own-out", r["size"]))
        else:
            unknown.append((*top_two(s), "stranger", r["size"]))
    return genuine, unknown


def by_size(faces: list[dict], threshold: float) -> None:
    genuine_own: dict[tuple[int, int], list[float]] = defaultdict(list)
    loo: dict[tuple[int, int], list[float]] = defaultdict(list)
    strangers: dict[tuple[int, int], list[float]] = defaultdict(list)
    bands = [(0, 32), (32, 45), (45, 65), (65, 10_000)]
    for r in faces:
        band = next(b for b in bands if b[0] <= r["size"] < b[1])
        s = np.array(r["scores"], np.float64)
        if r["enrolled"]:
            own = r["ids"].index(r["truth"])
            genuine_own[band].append(float(s[own]))
            loo[band].append(float(np.delete(s, own).max()))
        else:
            strangers[band].append(float(s.max()))
    print(f"\n1. By face size (threshold {threshold:.3f})")
    print("| face px | enrolled faces | own score, median | own under threshold | unknown best: median / p99 / max "
          "(leave-own-out) | strangers: n, max |")
    print("|---|---|---|---|---|---|")
    for b in bands:
        g, u, st = np.array(genuine_own[b]), np.array(loo[b]), np.array(strangers[b])
        if not len(g):
            continue
        hi = "+" if b[1] >= 10_000 else f"-{b[1]}"
        print(f"| {b[0]}{hi} | {len(g)} | {np.median(g):.3f} | {np.mean(g < threshold):.0%} | "
              f"{np.median(u):.3f} / {np.quantile(u, 0.99):.3f} / {u.max():.3f} | "
              f"{len(st)}, {st.max() if len(st) else float('nan'):.3f} |")


def face_rules(faces: list[dict], threshold: float) -> None:
    genuine, unknown = probes(faces)
    g = np.array([(a, b, c) for a, b, c, _ in genuine], np.float64).reshape(-1, 3)
    strangers = np.array([(a, b) for a, b, kind, _ in unknown if kind == "stranger"], np.float64).reshape(-1, 2)
    loo = np.array([(a, b) for a, b, kind, _ in unknown if kind == "leave-own-out"], np.float64).reshape(-1, 2)

    def named(x: np.ndarray, t: float, lo: float | None, lead: float | None) -> np.ndarray:
        ok = x[:, 0] >= t
        if lo is not None and lead is not None:
            ok |= (x[:, 0] >= lo) & (x[:, 0] - x[:, 1] >= lead)
        return ok

    print(f"\n2. Face rules ({len(g)} enrolled faces, {len(strangers)} stranger faces, {len(loo)} leave-own-out probes)")
    print("| rule | named rightly | named wrongly | strangers named | leave-own-out named |")
    print("|---|---|---|---|---|")
    rules: list[tuple[str, float, float | None, float | None]] = [
        (f"threshold {threshold:.2f} (product)", threshold, None, None)]
    rules += [(f"threshold {t:.2f}", t, None, None) for t in (threshold - 0.03, threshold - 0.05, threshold - 0.08)]
    rules += [(f"threshold {threshold:.2f}, or >= {lo:.2f} leading by >= {lead:.2f}", threshold, lo, lead)
              for lo in (0.22,) for lead in (0.06, 0.08, 0.10, 0.12)]
    for name, t, lo, lead in rules:
        ng = named(g, t, lo, lead)
        right, wrong = int((ng & (g[:, 2] == 1)).sum()), int((ng & (g[:, 2] == 0)).sum())
        ns, nl = int(named(strangers, t, lo, lead).sum()), int(named(loo, t, lo, lead).sum())
        print(f"| {name} | {right} | {wrong} | {ns} | {nl} ({nl / max(1, len(loo)):.1%}) |")


def seat_agreement(faces: list[dict], threshold: float) -> None:
    seats: dict[tuple, list[dict]] = defaultdict(list)
    for r in faces:
        seats[(r["cond"], r["seed"], r["truth"])].append(r)  # one person = one seat all lecture

    def decide(rows: list[dict], drop: str | None, lo: float, lead: float) -> tuple[str | None, str | None]:
        votes: dict[str, int] = defaultdict(int)
        for r in rows:
            s, ids = np.array(r["scores"], np.float64), list(r["ids"])
            if drop is not None:
                k = ids.index(drop)
                s, ids = np.delete(s, k), ids[:k] + ids[k + 1:]
            top, second = top_two(s)
            best = ids[int(np.argmax(s))]
            if top >= threshold:
                return "threshold", best
            if top >= lo and top - second >= lead:
                votes[best] += 1
        agreed = [c for c, n in votes.items() if n >= 2]
        return ("agreement", agreed[0]) if len(agreed) == 1 else (None, None)

    n_enrolled = sum(rows[0]["enrolled"] for rows in seats.values())
    n_strangers = len(seats) - n_enrolled
    print(f"\n3. Seat agreement ({n_enrolled} enrolled seats, {n_strangers} stranger seats; the threshold names first)")
    print("| best candidate in >= 2 snapshots, each | seats newly named rightly | wrongly | stranger seats named | "
          "leave-own-out seats named |")
    print("|---|---|---|---|---|")
    for lo, lead in ((0.22, 0.0), (0.22, 0.03), (0.22, 0.05), (0.22, 0.08), (0.18, 0.05)):
        right = wrong = strangers = loo = 0
        for (_c, _s, who), rows in seats.items():
            how, best = decide(rows, None, lo, lead)
            if rows[0]["enrolled"]:
                right += how == "agreement" and best == who
                wrong += how == "agreement" and best != who
                loo += decide(rows, who, lo, lead)[0] == "agreement"
            else:
                strangers += how == "agreement"
        print(f"| >= {lo:.2f}, lead >= {lead:.2f} | {right} | {wrong} | {strangers} | {loo} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", nargs="+", default=["lecture_hall", "crowded_rows", "clean"],
                    choices=list(CONDITIONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    ap.add_argument("--occluded-templates", action="store_true",
                    help="enroll with two extra classroom views whose lower 30 %% is hidden")
    ap.add_argument("--save", type=Path, help="write the face records here (JSON lines)")
    ap.add_argument("--load", type=Path, nargs="+", help="analyse saved records instead of running sessions")
    a = ap.parse_args()
    records: list[dict] = []
    if a.load:
        for path in a.load:
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        if a.occluded_templates:
            enrollment.DEFAULT_VIEWS = DEFAULT_VIEWS + OCCLUDED_VIEWS  # what enroll_images renders
        cfg, _ = resolve_profile("fast", a.models_dir)
        pipe = Pipeline(cfg, a.models_dir)
        pipe.warm_up()
        locate = scrfd_locator(a.models_dir)
        for cond in a.conditions:
            for seed in a.seeds:
                got = session_faces(cond, seed, a.frames, pipe, locate)
                records += got
                print(f"{cond} seed {seed}: {got[-1]['right']}/{got[-1]['students']} statuses right, "
                      f"{len(got) - 1} faces", flush=True)
                if a.save:
                    with a.save.open("a") as f:
                        f.writelines(json.dumps(r) + "\n" for r in got)
    faces = [r for r in records if not r.get("session") and r["truth"] is not None]
    if not faces:
        raise SystemExit("no faces recorded")
    threshold = faces[0]["threshold"]
    source = f"records of {', '.join(map(str, a.load))}" if a.load else (
        f"models {a.models_dir}, frames {a.frames}, occluded templates {'on' if a.occluded_templates else 'off'}")
    print(f"\n{source}")
    by_size(faces, threshold)
    face_rules(faces, threshold)
    seat_agreement(faces, threshold)
    sessions: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        if r.get("session"):
            sessions[r["cond"]][0] += r["right"]
            sessions[r["cond"]][1] += r["students"]
    print("\n4. Statuses right: " + ", ".join(f"{c} {r}/{n} ({r / n:.1%})" for c, (r, n) in sessions.items()))


if __name__ == "__main__":
    main()
