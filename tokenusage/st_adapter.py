"""The one module that knows Streamlit: settings from secrets, the cached engine,
cached query results, sign-in and the URL query string. Pages call these."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import date
from typing import Any, NoReturn

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tokenusage import database, demo, queries, ranges, rollups, source, viewstate
from tokenusage.config import ConfigError, Settings, load_settings
from tokenusage.periods import DayRange, Period
from tokenusage.presentation import ranking_csv
from tokenusage.source import Source

CACHE_TTL = 300
FRESHNESS_TTL = 30
URL_LOADED = "_url_state_loaded"
URL_NOTICES = "_url_notices"


def secrets() -> dict[str, Any]:
    try:
        return st.secrets.to_dict()
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        return {}


def settings() -> Settings:
    try:
        return load_settings(secrets=secrets())
    except ConfigError as exc:
        st.error(f"Configuration error: {exc}", icon=":material/settings:")
        st.stop()


@st.cache_resource(show_spinner="Opening the database…")
def _engine(url: str) -> Engine:
    engine = database.make_engine(url)
    database.check_connection(engine)
    database.upgrade(engine)
    return engine


@st.cache_resource(show_spinner="Loading demo data for a first look…")
def _seed_demo(url: str, timezone: str) -> bool:
    engine = _engine(url)
    if not database.has_data(engine):
        demo.load(engine, timezone, demo.generate(timezone=timezone))
    return True


@st.cache_resource(show_spinner=False)
def _source(mapping: str) -> Source:
    return source.from_mapping(json.loads(mapping))


def mapping_key(config: Settings) -> str:
    """The source mapping as a string: a cache key that also rebuilds the Source."""
    return json.dumps(config.source_mapping or {}, sort_keys=True, default=str)


@st.cache_data(ttl=FRESHNESS_TTL, show_spinner="Updating the rollups…")
def _refresh(url: str, timezone: str, mapping: str) -> str:
    engine, origin = _engine(url), _source(mapping)
    mode = "current"
    if not rollups.is_current(engine, timezone, origin):
        mode = rollups.refresh(engine, timezone, source=origin).mode
    ranges.warm(engine, timezone)
    return mode


def engine_or_stop(config: Settings) -> Engine:
    """The shared engine, with demo data on a fresh embedded database and fresh rollups.

    A database that cannot be reached stops the page with a banner, not a traceback.
    """
    try:
        engine = _engine(config.db_url)
        origin = mapping_key(config)
        _source(origin)
        if config.is_default_db and not config.source_mapping:
            _seed_demo(config.db_url, config.timezone)
        _refresh(config.db_url, config.timezone, origin)
        return engine
    except ConfigError as exc:
        st.error(f"Configuration error: {exc}", icon=":material/settings:")
        st.stop()
    except DATABASE_ERRORS as exc:
        _database_down(exc)


DATABASE_ERRORS = (database.DatabaseUnavailable, SQLAlchemyError, OSError)


def _database_down(exc: Exception) -> NoReturn:
    message = " ".join(str(exc).split())[:300].replace("`", "'")
    st.error(
        "**The database is not reachable.** The dashboard will show data again as soon "
        f"as it is back.\n\n`{message}`",
        icon=":material/cloud_off:",
    )
    st.stop()


def guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, with a lost database shown as the banner instead of a traceback."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DATABASE_ERRORS as exc:
            _database_down(exc)

    return call


@guarded
def data_version(engine: Engine) -> tuple[str, int, str]:
    with engine.connect() as connection:
        return queries.data_version(connection)


@guarded
def is_demo(config: Settings, engine: Engine) -> bool:
    if config.source_mapping:
        return False
    with engine.connect() as connection:
        return queries.has_demo_data(connection)


_FUNCTIONS: dict[str, Callable[..., Any]] = {}


@st.cache_data(ttl=CACHE_TTL, max_entries=256, show_spinner=False)
def _cached_call(name: str, url: str, mapping: str, version: tuple[str, int, str], *args: Any
                 ) -> Any:
    return _FUNCTIONS[name](_engine(url), *args, source=_source(mapping))


def cached(function: Callable[..., Any]) -> Callable[..., Any]:
    """Bounded result cache keyed on the database URL, the data version and the arguments."""
    name = f"{function.__module__}.{function.__qualname__}"

    @guarded
    def call(config: Settings, engine: Engine, *args: Any) -> Any:
        return _cached_call(name, config.db_url, mapping_key(config), data_version(engine),
                            *args)

    _FUNCTIONS[name] = function

    return call


ranking_overview = cached(queries.ranking_overview)


def _export(engine: Engine, days: DayRange, search: str, source: Source) -> bytes:
    with queries.snapshot(engine) as connection:
        return ranking_csv(queries.iter_ranking(connection, days, search, source=source))


ranking_export = cached(_export)


def _user_detail(engine: Engine, user_id: str, days: DayRange, start_utc, end_utc,
                 source: Source):
    with queries.snapshot(engine) as connection:
        return (
            queries.user_profile(connection, user_id, source),
            queries.user_rank(connection, days, user_id, source),
            queries.daily_series(connection, days, user_id=user_id),
            queries.user_models(connection, user_id, start_utc, end_utc, source),
        )


user_detail = cached(_user_detail)


def require_sign_in(config: Settings) -> None:
    """Sign-in with Streamlit's OIDC when `[auth]` is configured in secrets."""
    if not secrets().get("auth"):
        if not config.is_default_db:
            st.sidebar.warning("Sign-in is off: anyone who can open this URL sees user data. "
                               "Configure `[auth]` in secrets.toml.", icon=":material/lock_open:")
        return
    if not st.user.get("is_logged_in", False):
        st.title("Token spend")
        st.write("This dashboard shows personal data. Sign in to continue.")
        st.button("Sign in", on_click=st.login, type="primary")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {st.user.get('email') or st.user.get('name')}")
        st.button("Sign out", on_click=st.logout)


def load_url_state() -> None:
    """On a session's first run, seed the filter widgets from the URL, noting bad values."""
    if st.session_state.get(URL_LOADED):
        return
    parsed = viewstate.parse(st.query_params.to_dict())
    for key in parsed.present:
        st.session_state[key] = getattr(parsed.filters, key)
    st.session_state[URL_NOTICES] = parsed.notices
    st.session_state[URL_LOADED] = True
    defaults = viewstate.Filters()
    for key in viewstate.KEYS:
        st.session_state.setdefault(key, getattr(defaults, key))


def show_url_notices() -> None:
    notices = st.session_state.pop(URL_NOTICES, [])
    if notices:
        st.warning("  \n".join(notices), icon=":material/link_off:")


def current_filters() -> viewstate.Filters:
    state = st.session_state
    date_range = state.get("date_range")
    complete = isinstance(date_range, tuple | list) and len(date_range) == 2
    return viewstate.Filters(
        period=Period(state.get("period") or Period.LAST_30_DAYS),
        date_range=tuple(date_range) if complete else None,
        search=state.get("search") or "",
        page_size=state.get("page_size") or queries.DEFAULT_PAGE_SIZE,
        page=state.get("page") or 1,
    )


def write_url(filters: viewstate.Filters, keys: tuple[str, ...]) -> None:
    """Mirror `keys` of the filters into the URL, leaving other parameters alone."""
    wanted = viewstate.to_params(filters)
    for key in keys:
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]


def fit_date_range(first: date, last: date) -> None:
    """Keep the custom range within [first, last] (the date picker's limits), saying so."""
    value = st.session_state.get("date_range")
    if not isinstance(value, tuple | list) or len(value) != 2:
        if not isinstance(value, tuple | list) or not value:
            st.session_state["date_range"] = (last.replace(day=1), last)
        return
    start, end = max(value[0], first), min(value[1], last)
    if start > end:
        start = end = last if value[0] > last else first
    if (start, end) != tuple(value):
        st.session_state["date_range"] = (start, end)
        st.session_state.setdefault(URL_NOTICES, []).append(
            f"The custom range {value[0]} – {value[1]} was cut to {start} – {end}: "
            f"dates run from {first} to today.")


def reset_page() -> None:
    st.session_state["page"] = 1
