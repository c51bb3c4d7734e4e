"""The command line: init, demo, refresh and verify on a real database file."""

from __future__ import annotations

from sqlalchemy import update

from tokenusage import database
from tokenusage.cli import main
from tokenusage.schema import daily_user_spend


def test_demo_refresh_verify(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    monkeypatch.setenv("TOKENUSAGE_TIMEZONE", "America/New_York")
    assert main(["--db", url, "init"]) == 0
    assert main(["--db", url, "demo", "--users", "40", "--events", "1500", "--days", "20"]) == 0
    assert "1,500 new events" in capsys.readouterr().out
    assert main(["--db", url, "demo", "--users", "40", "--events", "1500", "--days", "20"]) == 0
    assert "0 new events (1,500 already there)" in capsys.readouterr().out
    assert main(["--db", url, "verify"]) == 0
    assert "1,500 events checked" in capsys.readouterr().out

    engine = database.make_engine(url)
    with engine.begin() as connection:
        bump = daily_user_spend.c.cost_nanos + 1
        connection.execute(update(daily_user_spend).values(cost_nanos=bump))
    assert main(["--db", url, "verify"]) == 1
    assert "differ" in capsys.readouterr().out
    assert main(["--db", url, "refresh", "--rebuild"]) == 0
    assert "rebuild" in capsys.readouterr().out
    assert main(["--db", url, "verify"]) == 0


def test_bad_timezone_is_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOKENUSAGE_TIMEZONE", "Nowhere/Special")
    assert main(["--db", f"sqlite:///{tmp_path}/x.sqlite", "refresh"]) == 2
    assert "TOKENUSAGE_TIMEZONE" in capsys.readouterr().err


def test_unreachable_database_is_reported(capsys):
    assert main(["--db", "postgresql+psycopg://nobody@127.0.0.1:9/none", "refresh"]) == 2
    assert "error:" in capsys.readouterr().err
