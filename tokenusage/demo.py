"""Realistic, deterministic demo data: users, LLM usage events, payments and annotations.

Spend is heavy-tailed (a few users spend most), grows over time, dips at weekends,
has spikes (a campaign, a runaway script), uses several models at their real
relative prices, and correlates with paying: heavier AI users are likelier to be on
a paid plan. The same seed and end time give the same data.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Engine, insert

from tokenusage import ingest, rollups
from tokenusage.money import to_nanos
from tokenusage.periods import day_start_utc, today_in
from tokenusage.prices import MILLION, unit_prices
from tokenusage.schema import annotations

FIRST_NAMES_LATIN = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Mateo", "Sofia", "Ethan",
    "Chloé", "Jürgen", "Zoë", "Aarav", "Priya", "Hiroshi", "Yuki", "Carlos", "Lucía", "Amara",
    "Fatima", "Omar", "Grace", "Henry", "Isabel", "Jack", "Kofi", "Lena", "Marco", "Nora",
]
LAST_NAMES_LATIN = [
    "Smith", "Johnson", "García", "Müller", "Rossi", "Dubois", "Nowak", "Kowalski", "Silva",
    "O'Brien", "Nakamura", "Patel", "Kim", "Nguyen", "Andersen", "Jansen", "Costa", "Fischer",
    "Martin", "Okafor", "Haddad", "Lindqvist", "Murphy", "Weber", "Santos", "Brown",
]
FIRST_NAMES_CYRILLIC = [
    ("Анна", "anna"), ("Иван", "ivan"), ("Мария", "maria"), ("Дмитрий", "dmitry"),
    ("Елена", "elena"), ("Алексей", "alexey"), ("Ольга", "olga"), ("Сергей", "sergey"),
    ("Наталья", "natalya"), ("Михаил", "mikhail"), ("Юлия", "yulia"), ("Андрей", "andrey"),
    ("Татьяна", "tatyana"), ("Павел", "pavel"), ("Ксения", "ksenia"), ("Егор", "yegor"),
]
LAST_NAMES_CYRILLIC = [
    ("Иванов", "ivanov"), ("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"),
    ("Попов", "popov"), ("Соколов", "sokolov"), ("Лебедев", "lebedev"), ("Козлов", "kozlov"),
    ("Новиков", "novikov"), ("Морозов", "morozov"), ("Волков", "volkov"),
    ("Шевченко", "shevchenko"), ("Ткаченко", "tkachenko"), ("Ёлкин", "yolkin"),
]
FEMININE_NAMES = {"Анна", "Мария", "Елена", "Ольга", "Наталья", "Юлия", "Татьяна", "Ксения"}
DOMAINS = ["gmail.com", "outlook.com", "proton.me", "yandex.ru", "acme.io", "example.org"]

PLANS = ("free", "pro", "team", "enterprise")
PLAN_SPEND = np.array([0.45, 1.0, 1.7, 3.5])
PLAN_PRICE_USD = {"pro": "20", "team": "60", "enterprise": "400"}

# provider, model, share of calls on (free, pro, team, enterprise)
MODELS = [
    ("openai", "gpt-4o-mini", (0.45, 0.25, 0.20, 0.10)),
    ("openai", "gpt-4.1-mini", (0.20, 0.20, 0.18, 0.12)),
    ("google", "gemini-2.5-flash", (0.20, 0.15, 0.12, 0.10)),
    ("anthropic", "claude-3-5-haiku", (0.10, 0.10, 0.10, 0.08)),
    ("openai", "gpt-4o", (0.05, 0.18, 0.20, 0.25)),
    ("openai", "gpt-4.1", (0.00, 0.05, 0.08, 0.12)),
    ("anthropic", "claude-sonnet-4", (0.00, 0.07, 0.12, 0.23)),
]
HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 4, 6, 7, 7, 6, 6.5, 7, 7, 6, 5, 4, 3.5, 3, 2.5, 2, 1.5]
)

SMALL = {"users": 600, "events": 60_000, "days": 180}


@dataclass
class DemoData:
    users: list[dict[str, Any]]
    events: dict[str, np.ndarray]
    payments: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    seed: int

    @property
    def event_count(self) -> int:
        return len(self.events["user"])

    def event_rows(self) -> Iterator[dict[str, Any]]:
        """Events as import rows (one dict each), generated lazily."""
        ev, ids = self.events, [u["user_id"] for u in self.users]
        epoch = datetime(1970, 1, 1)
        for i in range(self.event_count):
            provider, model, _ = MODELS[ev["model"][i]]
            yield {
                "request_id": f"demo-{self.seed}-{i:09d}",
                "user_id": ids[ev["user"][i]],
                "occurred_at": epoch + timedelta(microseconds=int(ev["occurred_us"][i])),
                "provider": provider,
                "model": model,
                "input_tokens": int(ev["input_tokens"][i]),
                "output_tokens": int(ev["output_tokens"][i]),
                "cached_input_tokens": int(ev["cached_input_tokens"][i]),
                "cost_nanos": int(ev["cost_nanos"][i]),
                "cost_source": "source",
            }


def _people(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    people = []
    for i in range(count):
        if rng.random() < 0.3:
            first, first_latin = FIRST_NAMES_CYRILLIC[rng.integers(len(FIRST_NAMES_CYRILLIC))]
            last, last_latin = LAST_NAMES_CYRILLIC[rng.integers(len(LAST_NAMES_CYRILLIC))]
            if first in FEMININE_NAMES and last.endswith(("ов", "ев", "ин")):
                last, last_latin = last + "а", last_latin + "a"
        else:
            first = FIRST_NAMES_LATIN[rng.integers(len(FIRST_NAMES_LATIN))]
            last = LAST_NAMES_LATIN[rng.integers(len(LAST_NAMES_LATIN))]
            first_latin, last_latin = first, last
        handle = f"{first_latin}.{last_latin}".lower().replace("'", "")
        handle = unicodedata.normalize("NFKD", handle).encode("ascii", "ignore").decode()
        email = f"{handle}{i % 97 or ''}@{DOMAINS[rng.integers(len(DOMAINS))]}"
        people.append((f"{first} {last}", email))
    return people


def generate(
    users: int = SMALL["users"],
    events: int = SMALL["events"],
    days: int = SMALL["days"],
    seed: int = 7,
    timezone: str = "UTC",
    now: datetime | None = None,
) -> DemoData:
    """Generate demo data ending at `now` (default: the current time)."""
    rng = np.random.default_rng(seed)
    tz = ZoneInfo(timezone)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = today_in(tz, now)
    first_day = today - timedelta(days=days - 1)
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    starts = np.array([day_start_utc(d, tz) for d in day_list + [today + timedelta(days=1)]],
                      dtype="datetime64[us]")
    now_naive = np.datetime64(now.replace(tzinfo=None), "us")

    # Users: heavy-tailed appetite, plan correlated with it, some never use AI.
    appetite = rng.lognormal(0.0, 1.35, users)
    appetite[rng.random(users) < 0.01] *= 6
    strength = (np.log(appetite) - np.log(appetite).mean()) / np.log(appetite).std()
    paid_odds = 1 / (1 + np.exp(-(strength * 1.1 - 0.6)))
    plan_idx = np.where(rng.random(users) < paid_odds,
                        rng.choice([1, 2, 3], users, p=[0.62, 0.28, 0.10]), 0)
    appetite *= PLAN_SPEND[plan_idx]
    appetite[rng.random(users) < 0.14] = 0.0
    signup_offset = (rng.random(users) ** 0.7) * (days + 240) - 240
    signup_day = np.clip(np.floor(signup_offset), -240, days - 1).astype(int)
    signup_at = [
        day_start_utc(first_day + timedelta(days=int(d)), tz)
        + timedelta(seconds=int(rng.integers(6 * 3600, 22 * 3600)))
        for d in signup_day
    ]
    signup_at = [min(s, now.replace(tzinfo=None) - timedelta(minutes=5)) for s in signup_at]
    people = _people(rng, users)
    user_rows = [
        {
            "user_id": f"usr_{seed:02d}{i + 1:06d}",
            "name": people[i][0],
            "email": people[i][1],
            "plan": PLANS[plan_idx[i]],
            "signed_up_at": signup_at[i],
        }
        for i in range(users)
    ]

    # Calendar: growth, weekends, noise, a campaign and a release spike.
    t = np.arange(days) / max(days - 1, 1)
    weekday = np.array([d.weekday() for d in day_list])
    day_weight = (1 + 1.6 * t**1.3) * np.where(weekday >= 5, 0.55, 1.0)
    day_weight *= rng.lognormal(0, 0.08, days)
    campaign_day, release_day = int(days * 0.62), int(days * 0.35)
    for offset, boost in ((0, 2.4), (1, 1.7), (2, 1.3)):
        if campaign_day + offset < days:
            day_weight[campaign_day + offset] *= boost
    if release_day < days:
        day_weight[release_day] *= 1.5
    elapsed_today = (now_naive - starts[-2]) / (starts[-1] - starts[-2])
    day_weight[-1] *= float(np.clip(elapsed_today, 0.02, 1.0))
    cumulative = np.cumsum(day_weight)

    # A user's calls scale with appetite and with the share of the period they were signed up.
    active_from = np.clip(signup_day, 0, days - 1)
    exposure = (cumulative[-1] - np.where(active_from > 0, cumulative[active_from - 1], 0.0))
    weight = appetite * exposure / cumulative[-1]
    active = np.flatnonzero(weight > 0)
    user_p = weight[active] / weight[active].sum()
    ev_user = active[rng.choice(len(active), events, p=user_p)]
    first_allowed = active_from[ev_user]
    low = np.where(first_allowed > 0, cumulative[first_allowed - 1], 0.0)
    ev_day = np.searchsorted(cumulative, low + rng.random(events) * (cumulative[-1] - low))
    ev_day = np.minimum(ev_day, days - 1)

    # A runaway script: one heavy user, one day, many calls.
    spike_users = active[np.argsort(-appetite[active])[:3]]
    spike_share = int(events * 0.03)
    if spike_share and days > 10:
        chosen = rng.choice(events, spike_share, replace=False)
        ev_user[chosen] = spike_users[1]
        ev_day[chosen] = max(int(days * 0.8), int(np.clip(signup_day[spike_users[1]], 0, days - 1)))

    hour = rng.choice(24, events, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    fraction = (hour + rng.random(events)) / 24
    elapsed = float(np.clip(elapsed_today, 0.0, 1.0))
    fraction = np.where(ev_day == days - 1, fraction * elapsed, fraction)
    length = (starts[ev_day + 1] - starts[ev_day]).astype("int64")
    occurred = starts[ev_day] + (fraction * length).astype("int64").astype("timedelta64[us]")
    occurred = np.minimum(occurred, now_naive - np.timedelta64(1, "s"))

    ev_plan = plan_idx[ev_user]
    shares = np.array([m[2] for m in MODELS]).T
    shares = shares / shares.sum(axis=1, keepdims=True)
    pick = rng.random(events)
    ev_model = (pick[:, None] > np.cumsum(shares[ev_plan], axis=1)).sum(axis=1).astype("int8")
    ev_model = np.minimum(ev_model, len(MODELS) - 1)
    input_tokens = np.clip(rng.lognormal(np.log(2200), 1.0, events), 12, 180_000).astype("int64")
    output_tokens = np.clip(rng.lognormal(np.log(380), 0.9, events), 1, 16_000).astype("int64")
    cached = np.where(rng.random(events) < 0.35,
                      (input_tokens * rng.uniform(0.2, 0.9, events)).astype("int64"), 0)

    cost = np.zeros(events, dtype="int64")
    month_of = (occurred.astype("datetime64[M]")).astype("int64")
    for model_index, (provider, model, _) in enumerate(MODELS):
        for month in np.unique(month_of[ev_model == model_index]):
            mask = (ev_model == model_index) & (month_of == month)
            when = datetime(1970 + int(month) // 12, int(month) % 12 + 1, 15, tzinfo=UTC)
            prices = unit_prices(provider, model, when)
            total = ((input_tokens[mask] - cached[mask]) * prices.input
                     + cached[mask] * prices.cached_input + output_tokens[mask] * prices.output)
            cost[mask] = (total + MILLION // 2) // MILLION

    order = np.argsort(occurred, kind="stable")
    event_columns = {
        "user": ev_user[order].astype("int32"),
        "occurred_us": occurred[order].astype("int64"),
        "model": ev_model[order],
        "input_tokens": input_tokens[order],
        "output_tokens": output_tokens[order],
        "cached_input_tokens": cached[order],
        "cost_nanos": cost[order],
    }
    return DemoData(
        users=user_rows,
        events=event_columns,
        payments=_payments(user_rows, now.replace(tzinfo=None), seed),
        annotations=[
            {"day": day_list[release_day], "kind": "release", "title": "AI summaries released"},
            {"day": day_list[campaign_day], "kind": "campaign",
             "title": "Spring AI campaign (email + in-app)"},
        ],
        seed=seed,
    )


def _payments(users: list[dict[str, Any]], now: datetime, seed: int) -> list[dict[str, Any]]:
    rows = []
    for user in users:
        amount = PLAN_PRICE_USD.get(user["plan"])
        if amount is None:
            continue
        paid_at, n = user["signed_up_at"] + timedelta(days=14), 0
        while paid_at <= now:
            rows.append({
                "payment_id": f"demo-pay-{seed}-{user['user_id']}-{n:03d}",
                "user_id": user["user_id"],
                "paid_at": paid_at,
                "amount_nanos": to_nanos(amount),
            })
            paid_at, n = paid_at + timedelta(days=30), n + 1
    return rows


def load(
    engine: Engine,
    timezone: str,
    data: DemoData,
    on_batch: Callable[[ingest.IngestStats], None] | None = None,
    batch_size: int = 20_000,
) -> ingest.IngestStats:
    """Write demo data to the database and refresh the rollups."""
    ingest.upsert_users(engine, data.users)
    stats = ingest.insert_events(engine, data.event_rows(), batch_size=batch_size,
                                 on_batch=on_batch)
    ingest.insert_payments(engine, data.payments)
    with engine.begin() as connection:
        existing = connection.execute(annotations.select()).first()
        if existing is None and data.annotations:
            connection.execute(insert(annotations), data.annotations)
    rollups.refresh(engine, timezone)
    return stats

