"""The progressive fetch engine: stage plan, scheduling policies, worker connections, events."""
from __future__ import annotations

from .engine import ADAPTIVE_MAX_CONNECTIONS, DEFAULT_CONNECTIONS, EngineUpdate, ProgressiveFetchEngine
from .events import EngineEvent, SeriesProgress
from .focus_policy import FocusPolicy, Shown, VisibleSet
from .scheduler import BREADTH_FIRST, DEPTH_FIRST, STRATEGIES, Scheduler
from .stage_plan import StagePlan

__all__ = ["ADAPTIVE_MAX_CONNECTIONS", "BREADTH_FIRST", "DEFAULT_CONNECTIONS", "DEPTH_FIRST", "EngineEvent", "EngineUpdate", "FocusPolicy",
           "ProgressiveFetchEngine", "STRATEGIES", "Scheduler", "SeriesProgress", "Shown", "StagePlan", "VisibleSet"]
