"""One user's spend: profile, rank, daily spend and models over the selected period."""

import pandas as pd
import streamlit as st

from tokenusage import charts, presentation
from tokenusage import st_adapter as web
from tokenusage.money import format_usd
from tokenusage.periods import Period, resolve, utc_bounds

config = web.settings()
engine = web.engine_or_stop(config)
filters = web.current_filters()
web.write_url(filters, ("period", "date_range"))

st.page_link("pages/ranking.py", label="Back to the ranking", icon=":material/arrow_back:")
user_id = st.query_params.get("user_id", "").strip()
if not user_id:
    st.title("User")
    st.info("Open a user from the Token spend ranking, or enter a user id.",
            icon=":material/person_search:")
    entered = st.text_input("User id")
    if entered:
        st.query_params["user_id"] = entered.strip()
        st.rerun()
    st.stop()

if filters.period is Period.CUSTOM and filters.date_range is None:
    st.info("Pick the end date of the custom period in the sidebar.", icon=":material/event:")
    st.stop()
days = resolve(filters.period, config.tz, filters.date_range)
start_utc, end_utc = utc_bounds(days, config.tz)
profile, ranked, series, models = web.user_detail(config, engine, user_id, days, start_utc,
                                                  end_utc)
if profile is None:
    st.title("User")
    st.warning(f"There is no user with id {presentation.plain(user_id)}.",
               icon=":material/person_off:")
    st.stop()

st.title(presentation.plain(profile.name))
details = [profile.user_id, profile.email, f"plan: {profile.plan}"]
if profile.signed_up_at:
    details.append(f"signed up {profile.signed_up_at:%b %-d, %Y}")
st.caption(" · ".join(presentation.plain(d) for d in details if d))
st.caption(f"{filters.period.label} · {days.describe()} · {config.timezone}")

spend_col, rank_col, calls_col, tokens_col = st.columns(4)
spend_col.metric("Spend", format_usd(ranked.spend_nanos if ranked else 0), border=True)
rank_col.metric("Rank", f"#{ranked.rank:,}" if ranked else "—", border=True)
calls_col.metric("LLM calls", f"{ranked.events:,}" if ranked else "0", border=True)
tokens_col.metric("Tokens", f"{ranked.tokens:,}" if ranked else "0", border=True)

if not ranked:
    st.info("No spend in this period.", icon=":material/event_busy:")
    st.stop()

st.subheader("Daily spend")
st.plotly_chart(charts.daily_spend(series), config={"displayModeBar": False})
st.subheader("By model")
st.dataframe(
    pd.DataFrame(
        [{"provider": m.provider, "model": m.model, "calls": m.events, "tokens": m.tokens,
          "spend_usd": format_usd(m.spend_nanos)} for m in models]
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "provider": "Provider",
        "model": "Model",
        "calls": st.column_config.NumberColumn("Calls", format="localized"),
        "tokens": st.column_config.NumberColumn("Tokens", format="localized"),
        "spend_usd": st.column_config.TextColumn("Spend (USD)", alignment="right"),
    },
)
