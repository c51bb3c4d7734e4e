"""Token spend: the ranking of users by LLM spend over a period."""

import streamlit as st

from tokenusage import charts, presentation, viewstate
from tokenusage import st_adapter as web
from tokenusage.periods import DayRange, Period, resolve
from tokenusage.queries import PAGE_SIZES

config = web.settings()
engine = web.engine_or_stop(config)
filters = web.current_filters()
web.write_url(filters, viewstate.KEYS)

st.title("Token spend")
if web.is_demo(config, engine):
    st.info("You are looking at generated demo data. Import your own with "
            "`python -m tokenusage import events FILE`.", icon=":material/science:")
web.show_url_notices()

if filters.period is Period.CUSTOM and filters.date_range is None:
    st.info("Pick the end date of the custom period in the sidebar.", icon=":material/event:")
    st.stop()

days = resolve(filters.period, config.tz, filters.date_range)
caption = st.empty()

overview = web.ranking_overview(config, engine, days, filters.search, filters.page,
                                filters.page_size)
page, totals, previous = overview.page, overview.page.totals, overview.previous
span = days if days.is_bounded or not overview.series else DayRange(
    overview.series[0].day, overview.series[-1].day)
caption.caption(f"{filters.period.label} · {span.describe()} · {config.timezone}")
if overview.requested_page != page.page:
    st.session_state["page"] = page.page
    st.toast(f"Page {overview.requested_page} is past the end; showing page {page.page}.")

if not overview.series and filters.period is Period.ALL:
    st.info("No usage data yet. Import events with `python -m tokenusage import events FILE`.",
            icon=":material/database:")
    st.stop()

for column, figure in zip(st.columns(4), presentation.headline(totals, previous), strict=True):
    column.metric(figure.label, figure.value, figure.delta, delta_color=figure.delta_color,
                  border=True)
if previous:
    st.caption("Changes compare with the previous "
               f"{days.days} day{'s' if days.days != 1 else ''}.")

if totals.unpriced:
    st.warning(
        f"{totals.unpriced:,} call{'s' if totals.unpriced != 1 else ''} in this period could "
        "not be priced (model without a known price) and count as $0. Add a price with "
        "`python -m tokenusage prices set …`, then run `python -m tokenusage reprice`.",
        icon=":material/price_change:",
    )

if totals.users == 0:
    st.info("No spend in this period.", icon=":material/event_busy:")
    st.stop()

st.plotly_chart(charts.daily_spend(overview.series, overview.annotations),
                config={"displayModeBar": False})

search_col, size_col = st.columns([4, 1], vertical_alignment="bottom")
search_col.text_input("Search users", key="search", placeholder="Name, email or user id",
                      on_change=web.reset_page, persist_state="session",
                      icon=":material/search:")
size_col.selectbox("Rows per page", PAGE_SIZES, key="page_size", on_change=web.reset_page,
                   persist_state="session")

if page.matching == 0:
    st.info(f"No user matches “{presentation.plain(filters.search)}” in this period.",
            icon=":material/search_off:")
else:
    names_are_links = presentation.names_are_links(config.profile_url)
    frame = presentation.ranking_frame(page, config.profile_url)
    chosen = st.dataframe(
        frame,
        key="ranking",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        width="stretch",
        height="content",
        column_order=["rank", "name", "user_id", "plan", "calls", "spend_usd"]
        + ([] if names_are_links else ["profile"]),
        column_config={
            "rank": st.column_config.NumberColumn("#", format="%d", width=60),
            "name": st.column_config.LinkColumn(
                "User", display_text=presentation.NAME_IN_FRAGMENT,
                help="Opens the user's profile") if names_are_links
            else st.column_config.TextColumn("User"),
            "user_id": st.column_config.TextColumn("User ID"),
            "plan": st.column_config.TextColumn("Plan"),
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "spend_usd": st.column_config.TextColumn("Spend (USD)", alignment="right"),
            "profile": st.column_config.LinkColumn("Profile",
                                                   display_text=":material/open_in_new:"),
        },
    )
    st.caption("Select a row to open that user's details; the name links to their profile.")
    if chosen.selection.rows:
        st.switch_page("pages/user.py",
                       query_params={"user_id": frame["user_id"].iloc[chosen.selection.rows[0]]})
    caption_col, pager_col = st.columns([1, 2], vertical_alignment="center")
    caption_col.caption(presentation.rows_caption(page))
    with pager_col.container(horizontal_alignment="right"):
        st.pagination(page.pages, key="page", persist_state="session")
    st.download_button(
        "Download CSV (all rows, exact amounts)",
        data=lambda: web.ranking_export(config, engine, days, filters.search),
        file_name=f"token-spend-{filters.period.value}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )

web.write_url(web.current_filters(), viewstate.KEYS)
