"""What the pages show: headline figures, table rows, CSV, links and safe text."""

import csv
import io

from tokenusage.presentation import (
    headline,
    name_link,
    names_are_links,
    percent_change,
    plain,
    ranking_csv,
    ranking_frame,
    rows_caption,
)
from tokenusage.queries import RankedUser, RankingPage, Totals

ROWS = [RankedUser(57, "u/57", "Анна <b>", "a@x.io", "pro", 1_500, 3, 90),
        RankedUser(58, "u58", "Bob", "", "free", 1_234_565_000_000, 9, 12)]
PAGE = RankingPage(ROWS, 2_345, 29, 2, Totals(1_234_565_001_500, 2_345, 12, 102, 1))


def test_headline_with_and_without_a_previous_period():
    now, then = Totals(3_000_000_000, 3, 30, 300, 0), Totals(2_000_000_000, 4, 30, 100, 0)
    figures = {f.label: f for f in headline(now, then)}
    assert figures["Total spend"].value == "$3.00"
    assert figures["Total spend"].delta == "+50.0%"
    assert figures["Total spend"].delta_color == "inverse"
    assert figures["Users with spend"].delta == "-25.0%"
    assert figures["Average per user"].value == "$1.00" and figures["LLM calls"].delta == "+0.0%"
    assert all(f.delta is None for f in headline(now, None))
    assert percent_change(5, 0) is None


def test_table_rows_and_caption():
    frame = ranking_frame(PAGE, None)
    assert list(frame["rank"]) == [57, 58]
    assert list(frame["spend_usd"]) == ["$0.0000015", "$1,234.57"]
    assert frame["name"].iloc[0] == "user?user_id=u%2F57#%D0%90%D0%BD%D0%BD%D0%B0%20%3Cb%3E"
    assert rows_caption(PAGE) == "Rows 57–58 of 2,345"


def test_links_with_a_fragment_in_the_template():
    assert name_link("https://crm.example.com/#/users/{user_id}", "7", "Ann") is None
    assert not names_are_links("https://crm.example.com/#/users/{user_id}")
    frame = ranking_frame(PAGE, "https://crm.example.com/#/users/{user_id}")
    assert frame["name"].iloc[1] == "Bob"
    assert frame["profile"].iloc[1] == "https://crm.example.com/#/users/u58"


def test_csv_has_every_row_with_exact_amounts():
    text = ranking_csv(ROWS).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["spend_usd"] == "0.000001500" and rows[1]["spend_usd"] == "1234.565000000"
    assert rows[0]["name"] == "Анна <b>" and rows[0]["rank"] == "57"


def test_plain_text_is_never_markup():
    assert plain("[click](https://evil.example) **bold** <b>") == (
        "\\[click\\]\\(https\\://evil\\.example\\) \\*\\*bold\\*\\* \\<b\\>")


def test_csv_cells_never_start_a_formula():
    evil = RankedUser(1, "@u1", '=HYPERLINK("https://evil.example")', "+x@y.z", "-pro", 5, 1, 1)
    row = next(csv.DictReader(io.StringIO(ranking_csv([evil]).decode())))
    assert row["name"] == '\'=HYPERLINK("https://evil.example")'
    assert (row["user_id"], row["email"], row["plan"]) == ("'@u1", "'+x@y.z", "'-pro")


def test_chart_annotations_are_text():
    from datetime import date

    from tokenusage.charts import daily_spend
    from tokenusage.queries import SeriesPoint

    points = [SeriesPoint(date(2026, 11, d), 10**9, 1, 1) for d in (1, 2, 3)]
    figure = daily_spend(points, [(date(2026, 11, 2), '<a href="https://evil.example">x</a>')])
    assert figure.layout.annotations[0].text == "&lt;a href=&quot;https://evil.example&quot;&gt;x&lt;/a&gt;"
