"""Token spend dashboard: page config, sign-in, shared period filter, navigation."""

from datetime import date

import streamlit as st

from tokenusage import st_adapter as web
from tokenusage.periods import Period, today_in

FIRST_DAY = date(2000, 1, 1)

st.set_page_config(page_title="Token spend", page_icon=":material/toll:", layout="wide")

config = web.settings()
web.require_sign_in(config)
engine = web.engine_or_stop(config)
web.load_url_state()

today = today_in(config.tz)
with st.sidebar:
    st.radio(
        "Period",
        options=list(Period),
        format_func=lambda p: p.label,
        key="period",
        on_change=web.reset_page,
        persist_state="session",
    )
    if st.session_state.get("period") == Period.CUSTOM:
        web.fit_date_range(FIRST_DAY, today)
        st.date_input(
            "Dates",
            value=(today.replace(day=1), today),
            min_value=FIRST_DAY,
            max_value=today,
            key="date_range",
            on_change=web.reset_page,
            persist_state="session",
            format="YYYY-MM-DD",
        )
    st.caption(f"Calendar days in {config.timezone}.")

navigation = st.navigation(
    [
        st.Page("pages/ranking.py", title="Token spend", icon=":material/leaderboard:",
                default=True),
        st.Page("pages/user.py", title="User", icon=":material/person:", url_path="user"),
    ]
)
navigation.run()
