"""Plotly figures for the pages."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date

import plotly.graph_objects as go

from tokenusage.money import format_usd, to_decimal
from tokenusage.queries import SeriesPoint

ACCENT = "#4F46E5"


def daily_spend(points: Sequence[SeriesPoint], annotations: Sequence[tuple[date, str]] = ()
                ) -> go.Figure:
    """Bars of spend per business day, hover with exact-to-the-cent amounts."""
    days = [p.day for p in points]
    figure = go.Figure(
        go.Bar(
            x=days,
            y=[float(to_decimal(p.spend_nanos)) for p in points],
            customdata=[[format_usd(p.spend_nanos), f"{p.events:,}", f"{p.users:,}"]
                        for p in points],
            hovertemplate="%{x|%a %b %-d, %Y}<br><b>%{customdata[0]}</b>"
                          "<br>%{customdata[1]} calls · %{customdata[2]} users<extra></extra>",
            marker_color=ACCENT,
        )
    )
    if len(points) > 1:
        first, last = days[0], days[-1]
        for day, title in annotations:
            if first <= day <= last:
                figure.add_vline(x=day, line_dash="dot", line_color="#9CA3AF")
                figure.add_annotation(x=day, y=1, yref="paper", text=html.escape(title),
                                      showarrow=False,
                                      xanchor="left", yanchor="top", font_size=11,
                                      font_color="#6B7280")
    figure.update_layout(
        height=300,
        margin={"l": 8, "r": 8, "t": 12, "b": 8},
        yaxis_tickprefix="$",
        yaxis_tickformat=",.2f" if max((p.spend_nanos for p in points), default=0) < 10**10
        else ",.0f",
        bargap=0.15,
        showlegend=False,
        xaxis_title=None,
        yaxis_title=None,
    )
    return figure
