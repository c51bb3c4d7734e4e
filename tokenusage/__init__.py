"""tokenusage: who spends what on LLM tokens, from the database to the dashboard."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["record_openai_usage", "record_usage"]


def __getattr__(name: str) -> Any:
    """Load the recording API on first use, so that `import tokenusage` stays cheap."""
    if name in __all__:
        from tokenusage import recording

        return getattr(recording, name)
    raise AttributeError(f"module 'tokenusage' has no attribute {name!r}")
