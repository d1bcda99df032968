"""The dashboard: a local web page of what routing spends, saves and chooses, from a store.

``metallm dashboard --store URL`` serves it; `Dashboard` is the server, `LogSummary` the totals
it folds from the store's event log as the workers write.
"""

from metallm.dashboard._server import Dashboard
from metallm.dashboard._summary import LogSummary

__all__ = ["Dashboard", "LogSummary"]
