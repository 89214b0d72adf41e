"""The web console (``/``) and the JSON read API (``/api/v1/…``): see the pipeline and the
campaigns without a terminal.

Served beside the collector by ``advertisex serve`` and ``up`` (:func:`app.combine`), or on
its own by ``advertisex console`` for a lake whose collector runs elsewhere. Pages are
rendered on the server with Jinja2 (autoescaping on: quarantined raw text is attacker
-controlled); the only script is ``static/console.js``, which draws the charts with the
vendored uPlot (MIT, ``static/vendor``) from data the page carries — nothing is built
or fetched at install or run time.

It sits above the runners and below the CLI: everything it shows comes from the
platform facade it is handed (:class:`platform.Platform`) and the monitor's readers.
``docs/console.md`` describes the pages, access and the API.
"""
