"""typed course config: courses.capture_plan/thresholds/rules/camera -> courses.config

One ``CourseConfig`` (``aas_core.domain.course_config``) per course instead of four free
dicts, and sessions' ``capture_plan`` normalised to ``SessionPlan``. Data migration:

* plan ``{"snapshots"|"n", "first_after_s", ...}`` -> ``config.plan`` (missing keys: defaults);
* thresholds ``{"recognition", "model", "source"}`` -> ``config.recognition``;
* rules -> ``config.rules`` (unknown keys dropped; an invalid stored value -> defaults);
* camera ``{"kind", "url", "name", ...}`` -> ``config.camera`` = its ``name`` (the camera's
  kind, host and secrets now live with the named camera in AAS_CAMERAS / the secrets file).

Values that do not validate fall back to the defaults of their section, so the upgrade never
fails on old data; downgrade writes the sections back as the old dicts (the camera as
``{"name": ...}``).

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

courses = sa.table("courses", sa.column("id", sa.Integer), sa.column("capture_plan", sa.JSON),
                   sa.column("thresholds", sa.JSON), sa.column("rules", sa.JSON), sa.column("camera", sa.JSON),
                   sa.column("config", sa.JSON))
sessions = sa.table("sessions", sa.column("id", sa.Integer), sa.column("capture_plan", sa.JSON))
snapshots = sa.table("snapshots", sa.column("session_id", sa.Integer), sa.column("index", sa.Integer))


def _load(v: Any) -> Any:
    """A JSON column's value as a dict (some drivers hand back text); anything else -> {}."""
    if isinstance(v, (str, bytes)):
        try:
            v = json.loads(v)
        except ValueError:
            return {}
    return v if isinstance(v, dict) else {}


def _section(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in data.items() if k in model.model_fields}
    try:
        return model.model_validate(keep).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - an impossible stored value: the section's defaults
        return model().model_dump(mode="json")


def course_config_from_legacy(plan: Any, thresholds: Any, rules: Any, camera: Any) -> dict[str, Any]:
    from aas_core.domain.attendance import RuleConfig
    from aas_core.domain.course_config import CourseConfig, PlanConfig, RecognitionConfig

    plan = dict(_load(plan))
    if "n" in plan and "snapshots" not in plan:
        plan["snapshots"] = plan.pop("n")
    thr = dict(_load(thresholds))
    if "recognition" in thr:
        thr["threshold"] = thr.pop("recognition")
    name = _load(camera).get("name")
    cfg = {"plan": _section(PlanConfig, plan), "rules": _section(RuleConfig, _load(rules)),
           "recognition": _section(RecognitionConfig, thr), "camera": (str(name).strip()[:100] or None) if name else None}
    return CourseConfig.model_validate(cfg).model_dump(mode="json")


def session_plan_from_legacy(plan: Any, n_rows: int) -> dict[str, Any]:
    from aas_core.domain.course_config import SessionPlan

    p = _load(plan)
    offsets = p.get("offsets_s")
    n = int(p.get("snapshots") or p.get("n") or (len(offsets) if offsets else 0) or n_rows or 1)
    if offsets is not None and len(offsets) != n:
        offsets = None
    source = p.get("source")
    source = "camera" if source == "camera" or offsets else ("upload" if source == "upload" else "images")
    try:
        return SessionPlan(snapshots=n, source=source, offsets_s=offsets,
                           camera=p.get("camera") if isinstance(p.get("camera"), str) else None).model_dump(mode="json")
    except Exception:  # noqa: BLE001
        return SessionPlan(snapshots=max(1, min(n, 100))).model_dump(mode="json")


LEGACY = ('capture_plan', 'thresholds', 'rules', 'camera')


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # No batch mode (table copy) on SQLite: copying ``courses`` drops the old table, and with
    # foreign keys on that DROP cascades into sessions and attendance. Plain ADD/DROP COLUMN
    # is native since SQLite 3.35 and enough here (the columns are in no index or key).
    op.add_column('courses', sa.Column('config', sa.JSON(), nullable=True))
    bind = op.get_bind()
    for row in bind.execute(sa.select(courses.c.id, courses.c.capture_plan, courses.c.thresholds, courses.c.rules,
                                      courses.c.camera)).all():
        cfg = course_config_from_legacy(row.capture_plan, row.thresholds, row.rules, row.camera)
        bind.execute(courses.update().where(courses.c.id == row.id).values(config=cfg))
    counts = dict(bind.execute(sa.select(snapshots.c.session_id, sa.func.max(snapshots.c.index) + 1)
                               .group_by(snapshots.c.session_id)).all())
    for row in bind.execute(sa.select(sessions.c.id, sessions.c.capture_plan)).all():
        plan = session_plan_from_legacy(row.capture_plan, int(counts.get(row.id) or 0))
        bind.execute(sessions.update().where(sessions.c.id == row.id).values(capture_plan=plan))
    if not _sqlite():  # SQLite cannot ALTER a column's NULL-ness without the table copy (see above)
        op.alter_column('courses', 'config', existing_type=sa.JSON(), nullable=False)
    for col in LEGACY:
        op.drop_column('courses', col)


def downgrade() -> None:
    for col in reversed(LEGACY):
        op.add_column('courses', sa.Column(col, sa.JSON(), nullable=True))
    bind = op.get_bind()
    for row in bind.execute(sa.select(courses.c.id, courses.c.config)).all():
        cfg = _load(row.config)
        plan = dict(cfg.get("plan") or {})
        rec = dict(cfg.get("recognition") or {})
        thresholds = ({"recognition": rec["threshold"], "model": rec.get("model"), "source": rec.get("source")}
                      if rec.get("threshold") is not None else None)
        bind.execute(courses.update().where(courses.c.id == row.id).values(
            capture_plan=plan or None, rules=cfg.get("rules"), thresholds=thresholds,
            camera={"name": cfg["camera"]} if cfg.get("camera") else None))
    op.drop_column('courses', 'config')
