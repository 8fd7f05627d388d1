"""Prometheus metrics: one collector per area, the /metrics page, the HTTP server.

`build_exposition` joins the collectors into the page; `http.ExporterServer`
serves it. Snapshot-derived families are rendered once per snapshot and
format, the live ones (API accounting, streams, process) on every scrape.
"""
