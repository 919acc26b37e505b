"""The dashboards-as-code package lives in grafana/ (not an installed package): put it on the path."""

from __future__ import annotations

import sys
from pathlib import Path

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"
if str(GRAFANA_DIR) not in sys.path:
    sys.path.insert(0, str(GRAFANA_DIR))
