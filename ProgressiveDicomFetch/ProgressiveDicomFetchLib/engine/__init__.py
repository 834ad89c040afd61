"""The progressive fetch engine: stage plan, scheduling policies, worker connections, events."""
from __future__ import annotations

from .engine import DEFAULT_CONNECTIONS, EngineUpdate, ProgressiveFetchEngine
from .events import EngineEvent, SeriesProgress
from .focus_policy import FocusPolicy, Shown, VisibleSet
from .scheduler import BREADTH_FIRST, DEPTH_FIRST, STRATEGIES, Scheduler
from .stage_plan import StagePlan

__all__ = ["BREADTH_FIRST", "DEFAULT_CONNECTIONS", "DEPTH_FIRST", "EngineEvent", "EngineUpdate", "FocusPolicy",
           "ProgressiveFetchEngine", "STRATEGIES", "Scheduler", "SeriesProgress", "Shown", "StagePlan", "VisibleSet"]
