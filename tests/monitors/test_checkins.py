"""`kansoku.monitor`: each run of a decorated function or a block checks in, and is a job run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kansoku
from kansoku.exceptions import ConfigError
from kansoku.runtime import Runtime
from kansoku.store import monitors as stored
from kansoku.testing import isolated_runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a throwaway store, with one monitor in its configuration."""
    with isolated_runtime(tmp_path, dashboard=False, store_spans=False,
                          monitors=[{"name": "from-toml", "schedule": "*/5 * * * *", "max_runtime": "2m"}]) as made:
        yield made


def test_decorated_runs_check_in_progress_then_ok_or_error(runtime: Runtime) -> None:
    """A call checks in in_progress, then ok with its duration; a raising call checks in error and re-raises."""
    @kansoku.monitor("nightly-checkins", schedule="0 3 * * *", timezone="Europe/Berlin", max_runtime="1h")
    def report(fail: bool) -> str:
        assert runtime.engine is not None
        found = stored.get_monitor(runtime.engine, "nightly-checkins")
        assert found is not None and found["checkins"][0]["status"] == "in_progress"
        if fail:
            raise RuntimeError("no data")
        return "done"

    assert report(False) == "done"
    with pytest.raises(RuntimeError, match="no data"):
        report(True)
    assert runtime.engine is not None
    found = stored.get_monitor(runtime.engine, "nightly-checkins")
    assert found is not None
    assert [(c["status"], c["source"], c["duration"] is not None) for c in found["checkins"]] == [
        ("error", "code", True), ("ok", "code", True)]
    assert (found["status"], found["timezone"], found["max_runtime_seconds"]) == ("error", "Europe/Berlin", 3600.0)
    count = runtime.registry.get_sample_value
    assert count("kansoku_job_runs_total", {"job": "nightly-checkins", "status": "ok"}) == 1.0
    assert count("kansoku_job_runs_total", {"job": "nightly-checkins", "status": "error"}) == 1.0


def test_block_uses_the_monitor_of_the_configuration(runtime: Runtime) -> None:
    """`with kansoku.monitor(NAME):` takes the schedule of kansoku.toml's monitor of that name."""
    with kansoku.monitor("from-toml"):
        pass
    assert runtime.engine is not None
    found = stored.get_monitor(runtime.engine, "from-toml")
    assert found is not None
    assert (found["schedule"], found["max_runtime_seconds"], found["status"]) == ("*/5 * * * *", 120.0, "ok")
    assert [c["status"] for c in found["checkins"]] == ["ok"]


def test_a_monitor_without_schedule_anywhere_says_how_to_give_one(runtime: Runtime) -> None:
    """An undefined monitor without a schedule is a ConfigError naming both ways to define it."""
    with pytest.raises(ConfigError, match=r"has no schedule: pass schedule='0 3 \* \* \*'.*\[\[monitors\]\]"):
        kansoku.monitor("nowhere")
    with pytest.raises(ConfigError, match="not a valid crontab"):
        kansoku.monitor("bad", schedule="0 25 * * *")
