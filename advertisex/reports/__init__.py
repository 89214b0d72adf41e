"""Reports: named questions over the marts (and curated tables), answered with DuckDB.

``REPORTS`` maps a report name to the module answering it; each has
``report(ax, ReportOptions) -> pa.Table`` (``users`` returns a table per section).
"""

REPORTS = {
    "campaigns": "advertisex.reports.campaigns",
    "funnel": "advertisex.reports.funnel",
    "users": "advertisex.reports.users",
    "bids": "advertisex.reports.bids",
    "hourly": "advertisex.reports.hourly",
}
