"""Independent pandas computations the tests compare the dashboard with."""

from __future__ import annotations

from datetime import date

import pandas as pd


def local_days(events: pd.DataFrame, timezone: str) -> pd.Series:
    return events["occurred_at"].dt.tz_convert(timezone).dt.date


def ranking(events: pd.DataFrame, timezone: str, start: date | None, end: date | None,
            names: dict[str, str] | None = None) -> pd.DataFrame:
    """rank, user_id, spend_nanos over local calendar days [start, end], spenders only."""
    days = local_days(events, timezone)
    mask = pd.Series(True, index=events.index)
    if start is not None:
        mask &= days >= start
    if end is not None:
        mask &= days <= end
    spend = events[mask].groupby("user_id")["cost_nanos"].sum()
    spend = spend[spend > 0].reset_index().rename(columns={"cost_nanos": "spend_nanos"})
    spend["neg"] = -spend["spend_nanos"]
    spend = spend.sort_values(["neg", "user_id"]).drop(columns="neg").reset_index(drop=True)
    spend.insert(0, "rank", range(1, len(spend) + 1))
    if names is not None:
        spend["name"] = spend["user_id"].map(names)
    return spend


def daily_totals(events: pd.DataFrame, timezone: str) -> pd.Series:
    return events.groupby(local_days(events, timezone))["cost_nanos"].sum()
