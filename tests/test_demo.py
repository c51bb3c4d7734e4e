"""Demo data is realistic, not uniform noise, and deterministic."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from genai_prices import Usage, calc_price

from tests.conftest import NOW, demo_frame
from tokenusage import demo
from tokenusage.money import to_nanos


def test_same_seed_same_data():
    a = demo.generate(users=80, events=2_000, days=40, seed=3, now=NOW)
    b = demo.generate(users=80, events=2_000, days=40, seed=3, now=NOW)
    c = demo.generate(users=80, events=2_000, days=40, seed=4, now=NOW)
    assert a.users == b.users and a.payments == b.payments
    assert all(np.array_equal(a.events[k], b.events[k]) for k in a.events)
    assert not np.array_equal(a.events["cost_nanos"], c.events["cost_nanos"])


def test_shape_of_the_data(small_demo):
    frame = demo_frame(small_demo)
    users = pd.DataFrame(small_demo.users)
    spend = frame.groupby("user_id")["cost_nanos"].sum().sort_values(ascending=False)
    top_tenth = spend.head(max(1, len(users) // 10)).sum()
    assert top_tenth / spend.sum() > 0.5  # a few users spend most
    assert len(spend) < len(users)  # some users never use AI
    assert users["name"].str.contains("[А-Яа-яЁё]").any()
    assert users["name"].str.contains("[A-Za-z]").any()
    assert set(users["plan"]) == {"free", "pro", "team", "enterprise"}
    assert len(set(small_demo.events["model"])) >= 5
    assert frame["occurred_at"].max() < NOW and (frame["cost_nanos"] > 0).all()

    daily = frame.groupby(frame["occurred_at"].dt.tz_convert("Europe/Berlin").dt.date).size()
    daily.index = pd.to_datetime(daily.index)
    full_days = daily.iloc[:-1]
    weekend = full_days[full_days.index.day_of_week >= 5].mean()
    weekday = full_days[full_days.index.day_of_week < 5].mean()
    assert weekend < 0.8 * weekday  # weekly seasonality
    third = len(full_days) // 3
    assert full_days.iloc[-third:].mean() > 1.3 * full_days.iloc[:third].mean()  # growth

    plan = users.set_index("user_id")["plan"]
    per_plan = spend.groupby(plan.reindex(spend.index)).median()
    assert per_plan["enterprise"] > per_plan["free"]
    paying = {p["user_id"] for p in small_demo.payments}
    assert paying == set(users.loc[users["plan"] != "free", "user_id"]) & paying
    assert all(plan[uid] != "free" for uid in paying)


def test_costs_are_real_prices(small_demo):
    rows = list(small_demo.event_rows())
    for row in rows[:: len(rows) // 25]:
        when = row["occurred_at"].replace(day=15, hour=0, minute=0, second=0, microsecond=0,
                                          tzinfo=UTC)
        price = calc_price(
            Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                  cache_read_tokens=row["cached_input_tokens"]),
            row["model"], provider_id=row["provider"], genai_request_timestamp=when,
        ).total_price
        assert abs(row["cost_nanos"] - to_nanos(price)) <= 1


def test_today_only_has_past_events():
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    data = demo.generate(users=50, events=3_000, days=10, seed=1, now=now)
    latest = pd.to_datetime(data.events["occurred_us"].max(), unit="us", utc=True)
    assert latest < now
