"""The collector: HTTP intake that lands events durably before acknowledging them.

``create_app(settings)`` builds the ASGI app (see :mod:`advertisex.collector.app`);
``serve(settings)`` runs it on uvicorn (:mod:`advertisex.collector.server`).
"""
