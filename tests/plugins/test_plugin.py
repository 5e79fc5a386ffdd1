"""The sms.cn page plugin: found by Airflow from the installed package alone, assets in the wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_airflow_loads_the_page_plugin_with_default_settings(tmp_path):
    """``airflow plugins`` in a fresh AIRFLOW_HOME lists the page: its app at /smscn and a nav entry."""
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([AIRFLOW, "plugins", "-o", "json"], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "smscn" in plugins, out.stdout
    page = plugins["smscn"]
    from airflow_provider_smscn._compat import AIRFLOW_V_3

    if not AIRFLOW_V_3:  # 2.11: the plugin loads, empty (the page needs Airflow 3's FastAPI api-server)
        assert not page.get("fastapi_apps") and not page.get("external_views")
        return
    assert [a["url_prefix"] for a in page["fastapi_apps"]] == ["/smscn"]
    assert [(v["name"], v["href"], v["url_route"]) for v in page["external_views"]] == [
        ("sms.cn", "/smscn/", "smscn")]


def test_page_assets_ship_in_the_wheel(tmp_path):
    """Page, script, style, icon and the bundled Chart.js with its license are in the wheel (offline)."""
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
                   capture_output=True, text=True, timeout=600, check=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    static = "airflow_provider_smscn/plugins/static/"
    for name in ("index.html", "page.js", "page.css", "icon.svg", "vendor/chart.umd.min.js",
                 "vendor/chart.js-LICENSE.md"):
        assert static + name in names, name
    html = (ROOT / static / "index.html").read_text()
    assert "http://" not in html and "https://" not in html, "the page must not load anything from a CDN"
