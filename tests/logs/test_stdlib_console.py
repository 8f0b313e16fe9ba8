"""The app's own `logging.basicConfig()` kept beside kansoku: each stdlib record is printed once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

APP = """
import logging, sys

logging.basicConfig(level=logging.INFO, format="TEXT %(name)s %(message)s")  # the app's own, kept
logging.getLogger("shop").addHandler(logging.FileHandler(sys.argv[1]))  # a file of the app's stays

from fastapi import FastAPI
import kansoku

app = kansoku.instrument(FastAPI(), database_url=sys.argv[2])
logging.getLogger("shop").warning("stock low for sku-1")
kansoku.logs.flush()
"""


def test_basic_config_lines_are_not_printed_twice(tmp_path: Path) -> None:
    """basicConfig then instrument(): one JSON line per record, no text copy; the app's file handler still writes."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "shop.log"), f"sqlite:///{tmp_path / 'k.db'}"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert output.count("stock low for sku-1") == 1, output
    assert '"logger":"shop"' in done.stdout
    assert "TEXT shop" not in output
    assert (tmp_path / "shop.log").read_text() == "stock low for sku-1\n"
