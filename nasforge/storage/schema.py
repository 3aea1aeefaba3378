"""SQLAlchemy 2.x tables: studies, trials, intermediate metrics, strategy state and measured costs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class StudyModel(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    owner: Mapped[str] = mapped_column(String(200), default="")
    config: Mapped[dict] = mapped_column(JSON, nullable=False)
    objective: Mapped[str] = mapped_column(String(100), nullable=False)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    artifact_dir: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # The gradient-boosting baseline fitted on the study's split (nasforge.baseline): its metrics.
    baseline: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class TrialModel(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_trial_number"),
        Index("ix_trial_study_key", "study_id", "key"),
        Index("ix_trial_study_state", "study_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    key: Mapped[str] = mapped_column(String(500), nullable=False)
    arch: Mapped[dict] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    started: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    parent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget: Mapped[dict] = mapped_column(JSON, default=dict)
    info: Mapped[dict] = mapped_column(JSON, default=dict)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Which runner holds a running trial ("host:pid-namespace:pid:token"), so a stale or dead holder's
    # trial can be claimed by exactly one other runner; and the failed trial a retry replaces.
    runner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IntermediateModel(Base):
    __tablename__ = "trial_metrics"
    __table_args__ = (Index("ix_metric_trial", "trial_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), nullable=False)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)


class StrategyStateModel(Base):
    __tablename__ = "strategy_state"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[dict] = mapped_column(JSON, nullable=False)
    updated: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # Bumped by every write: a runner sharing the study reloads the state only when another wrote it.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

class CostModel(Base):
    """Costs measured for an architecture key in a measurement context (space and options, model inputs, the
    machine and the latency settings; nasforge.objectives.costs): shared by every study of the store, so a
    resumed or a second study measures an architecture once per device."""

    __tablename__ = "cost_cache"
    __table_args__ = (UniqueConstraint("key", "context", name="uq_cost_key_context"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(500), nullable=False, index=True)
    context: Mapped[str] = mapped_column(String(64), nullable=False)
    values: Mapped[dict] = mapped_column(JSON, nullable=False)
    created: Mapped[datetime] = mapped_column(DateTime, nullable=False)


# Columns added after the first release: (table, column, SQL type) added to older databases on open.
ADDED_COLUMNS = (("trials", "runner", "VARCHAR(200)"), ("trials", "retry_of", "INTEGER"),
                 ("strategy_state", "version", "INTEGER NOT NULL DEFAULT 0"), ("studies", "baseline", "JSON"))
