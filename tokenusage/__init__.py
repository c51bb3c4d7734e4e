"""tokenusage: who spends what on LLM tokens, from the database to the dashboard."""

__version__ = "0.1.0"
