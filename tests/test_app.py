"""The pages, driven through Streamlit's AppTest, read back and checked against pandas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import demo_frame
from tests.oracle import ranking
from tokenusage import config, database, demo, ingest
from tokenusage.money import format_usd
from tokenusage.periods import Period

TZ = "Europe/Moscow"
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def live_demo():
    """Demo data ending now, so the app's own clock agrees with the oracle's."""
    return demo.generate(users=220, events=9_000, days=90, seed=5, timezone=TZ,
                         now=datetime.now(UTC))


@pytest.fixture(scope="module")
def db_url(live_demo, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('app')}/app.sqlite"
    engine = database.make_engine(url)
    database.upgrade(engine)
    demo.load(engine, TZ, live_demo)
    engine.dispose()
    return url


@pytest.fixture
def app(db_url, monkeypatch):
    monkeypatch.setenv("TOKENUSAGE_DB_URL", db_url)
    monkeypatch.setenv("TOKENUSAGE_TIMEZONE", TZ)
    monkeypatch.delenv("TOKENUSAGE_PROFILE_URL", raising=False)

    def start(**query) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()

    return start


def today() -> date:
    return datetime.now(UTC).astimezone(config.ZoneInfo(TZ)).date()


def expected(live_demo, start=None, end=None):
    names = {u["user_id"]: u["name"] for u in live_demo.users}
    return ranking(demo_frame(live_demo), TZ, start, end, names)


def table(at):
    frame = at.dataframe(key="ranking").value
    return list(zip(frame["rank"], frame["user_id"], frame["spend_usd"], strict=True))


def oracle_rows(frame, first=0, count=25):
    part = frame.iloc[first:first + count]
    return [(int(r), u, format_usd(int(s))) for r, u, s in
            zip(part["rank"], part["user_id"], part["spend_nanos"], strict=True)]


def caption_texts(at):
    return [c.value for c in at.caption]


def test_default_view_is_last_30_days(app, live_demo):
    at = app()
    assert not at.exception
    want = expected(live_demo, today() - timedelta(days=29), today())
    assert table(at) == oracle_rows(want)
    assert f"Rows 1–25 of {len(want):,}" in caption_texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Total spend"] == format_usd(int(want["spend_nanos"].sum()))
    assert metrics["Users with spend"] == f"{len(want):,}"
    assert metrics["Average per user"] == format_usd(int(want["spend_nanos"].sum()) // len(want))
    assert any("generated demo data" in i.value for i in at.info)
    names = at.dataframe(key="ranking").value["name"]
    first = want.iloc[0]
    assert names.iloc[0].startswith(f"user?user_id={first['user_id']}#")
    assert at.get("plotly_chart")


@pytest.mark.parametrize("period", ["all", "today"])
def test_period_selector(app, live_demo, period):
    at = app()
    at.radio(key="period").set_value(Period(period)).run()
    bounds = (None, None) if period == "all" else (today(), today())
    want = expected(live_demo, *bounds)
    assert table(at) == oracle_rows(want)
    assert at.query_params["period"] == period


def test_custom_range_waits_for_the_end_date(app, live_demo):
    # AppTest drops the entry script's sidebar from its tree after a rerun, so each
    # interaction with the sidebar date input starts from a fresh session.
    start, end = today() - timedelta(days=40), today() - timedelta(days=20)
    at = app(period="custom")
    assert at.date_input(key="date_range").value == (today().replace(day=1), today())
    at.date_input(key="date_range").set_value((start,)).run()
    assert not at.exception
    assert any("end date" in i.value for i in at.info)
    assert not at.dataframe
    at = app(period="custom")
    at.date_input(key="date_range").set_value((start, end)).run()
    assert table(at) == oracle_rows(expected(live_demo, start, end))
    assert at.query_params["date_range"] == f"{start}/{end}"


def test_search_keeps_ranks_and_resets_the_page(app, live_demo):
    at = app(page="3")
    at.text_input(key="search").input("анна").run()
    want = expected(live_demo, today() - timedelta(days=29), today())
    matches = want[want["name"].str.casefold().str.contains("анна")]
    assert len(matches) > 1
    assert table(at) == oracle_rows(matches)
    assert at.query_params["search"] == "анна" and "page" not in at.query_params
    at.text_input(key="search").input("no such person").run()
    assert any("No user matches" in i.value for i in at.info)


def test_page_size_and_pagination(app, live_demo):
    at = app(period="all")
    at.selectbox(key="page_size").set_value(10).run()
    want = expected(live_demo)
    assert table(at) == oracle_rows(want, 0, 10)
    at.pagination(key="page").select(3).run()
    assert table(at) == oracle_rows(want, 20, 10)
    assert f"Rows 21–30 of {len(want):,}" in caption_texts(at)
    assert at.query_params["page"] == "3" and at.query_params["page_size"] == "10"


def test_a_link_reproduces_the_view(app, live_demo):
    at = app(period="all", page_size="10", page="2", search="ов")
    want = expected(live_demo)
    want = want[want["name"].str.casefold().str.contains("ов")]
    assert len(want) > 10
    assert table(at) == oracle_rows(want, 10, 10)


def test_page_beyond_the_end_shows_the_last_page(app, live_demo):
    at = app(period="all", page_size="100", page="999")
    want = expected(live_demo)
    last = (len(want) - 1) // 100
    assert table(at) == oracle_rows(want, last * 100, 100)
    assert any("past the end" in t.value for t in at.toast)


def test_malformed_parameters_fall_back_with_a_notice(app, live_demo):
    at = app(period="fortnight", page_size="7", page="-1")
    assert not at.exception
    assert table(at) == oracle_rows(expected(live_demo, today() - timedelta(days=29), today()))
    notices = " ".join(w.value for w in at.warning)
    assert "period=fortnight" in notices and "page_size=7" in notices
    assert "period" not in at.query_params


def test_empty_period(app):
    at = app(period="custom", date_range="2020-01-01/2020-01-31")
    assert any("No spend in this period" in i.value for i in at.info)
    assert not at.dataframe


def test_profile_link_template(app, live_demo, monkeypatch):
    monkeypatch.setenv("TOKENUSAGE_PROFILE_URL", "https://crm.example.com/people/{user_id}")
    at = app(period="all")
    top = expected(live_demo).iloc[0]
    link = at.dataframe(key="ranking").value["name"].iloc[0]
    assert link.startswith(f"https://crm.example.com/people/{top['user_id']}#")


def test_user_page(app, live_demo):
    want = expected(live_demo)
    top = want.iloc[0]
    at = app(period="all")
    at.switch_page("pages/user.py")
    at.query_params["user_id"] = top["user_id"]
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Spend"] == format_usd(int(top["spend_nanos"]))
    assert metrics["Rank"] == "#1"
    assert at.title[0].value.replace("\\", "") == top["name"]


def test_empty_database(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    monkeypatch.setenv("TOKENUSAGE_DB_URL", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["period"] = "all"
    at.run()
    assert not at.exception
    assert any("No usage data yet" in i.value for i in at.info)


def test_default_database_gets_demo_data(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path}/default.sqlite"
    monkeypatch.setattr(config, "DEFAULT_DB_URL", url)
    monkeypatch.delenv("TOKENUSAGE_DB_URL", raising=False)
    monkeypatch.setenv("TOKENUSAGE_TIMEZONE", "UTC")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert any("generated demo data" in i.value for i in at.info)
    assert len(at.dataframe(key="ranking").value) == 25


def test_database_down_shows_a_banner(monkeypatch):
    monkeypatch.setenv("TOKENUSAGE_DB_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("not reachable" in e.value for e in at.error)


def test_bad_timezone_is_a_clear_error(monkeypatch, db_url):
    monkeypatch.setenv("TOKENUSAGE_DB_URL", db_url)
    monkeypatch.setenv("TOKENUSAGE_TIMEZONE", "Mars/Olympus")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("TOKENUSAGE_TIMEZONE" in e.value for e in at.error)


def test_unpriced_calls_are_flagged(monkeypatch, tmp_path, live_demo):
    url = f"sqlite:///{tmp_path}/unpriced.sqlite"
    engine = database.make_engine(url)
    database.upgrade(engine)
    demo.load(engine, TZ, live_demo)
    user = live_demo.users[0]["user_id"]
    ingest.insert_events(engine, [
        {"request_id": f"mystery-{i}", "user_id": user, "occurred_at": datetime.now(UTC)
         .replace(tzinfo=None) - timedelta(hours=1), "provider": "acme", "model": "acme-9",
         "input_tokens": 10, "output_tokens": 10, "cached_input_tokens": 0,
         "cost_nanos": None, "cost_source": "unpriced"} for i in range(3)])
    engine.dispose()
    monkeypatch.setenv("TOKENUSAGE_DB_URL", url)
    monkeypatch.setenv("TOKENUSAGE_TIMEZONE", TZ)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("3 calls in this period could not be priced" in w.value for w in at.warning)


def test_sign_in_gate_hides_the_data(app, monkeypatch, db_url):
    monkeypatch.setenv("TOKENUSAGE_DB_URL", db_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
        "client_id": "id", "client_secret": "secret",
        "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration",
    }
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe and not at.metric


def test_search_text_is_shown_as_text(app):
    at = app(search="[Session expired, sign in](https://evil.example/login)")
    message = next(i.value for i in at.info if "No user matches" in i.value)
    assert "\\[Session expired" in message and "\\(https\\://evil" in message


def test_a_custom_range_beyond_today_is_cut_with_a_notice(app, live_demo):
    start = today() - timedelta(days=10)
    at = app(period="custom", date_range=f"{start}/2035-01-01")
    assert not at.exception
    assert table(at) == oracle_rows(expected(live_demo, start, today()))
    assert any("was cut to" in w.value for w in at.warning)
    assert at.query_params["date_range"] == f"{start}/{today()}"


def test_database_lost_after_start_shows_the_banner(app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    at = app()
    assert at.dataframe

    def down(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr("tokenusage.queries.has_demo_data", down)
    monkeypatch.setattr("tokenusage.queries.data_version", down)
    at.run()
    assert not at.exception
    assert any("not reachable" in e.value for e in at.error)
