"""netobs Grafana dashboards as code (grafana-foundation-sdk builders), rendered to JSON in grafana/dashboards/.

    PYTHONPATH=grafana python -m netobs_grafana render          # rewrite grafana/dashboards/*.json
    PYTHONPATH=grafana python -m netobs_grafana check --prometheus http://127.0.0.1:9090
                                                                 # every panel query returns data?

Label names are the collector path's (otel-collector/config.local.yaml promotes the resource attributes
``netobs.agent.id``/``netobs.pop`` to ``agent``/``pop`` and renames the check attributes); they live in
:mod:`netobs_grafana.names`, with the Prometheus metric names, so a rename is one edit.
"""

from __future__ import annotations

from netobs_grafana.dashboards import DASHBOARDS, render_all

__all__ = ["DASHBOARDS", "render_all"]
