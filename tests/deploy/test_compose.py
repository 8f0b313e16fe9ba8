"""deploy/compose.yaml: the services are there, and what they mount, run and configure exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kansoku.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
KANSOKU = Path(sys.executable).with_name("kansoku")


def compose() -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def kansoku_services() -> dict[str, dict[str, Any]]:
    """Services that run the kansoku image."""
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image") == "kansoku:local"}


def setting_env_names() -> set[str]:
    """Every environment variable Settings reads (KANSOKU_CONFIG names the file)."""
    names = {"KANSOKU_CONFIG"}
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        if choices:
            names.update(str(c) for c in choices)
        else:
            names.add(f"KANSOKU_{name.upper()}")
    return names


def test_every_engine_and_kansoku_process_is_a_service() -> None:
    """App, PostgreSQL, Prometheus, Grafana, Jaeger, Alertmanager, worker and dashboard are all there."""
    services = set(compose()["services"])
    assert {"app", "postgres", "prometheus", "grafana", "jaeger", "alertmanager", "worker", "dashboard",
            "migrate"} <= services


def test_bind_mounts_point_at_files_in_deploy() -> None:
    """Every ./path mounted into a container exists in deploy/."""
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_kansoku_commands_are_real_commands() -> None:
    """Each `kansoku ...` command line of the compose file parses (checked with --help)."""
    for name, service in kansoku_services().items():
        command = service["command"]
        if command[0] != "kansoku":
            continue
        done = subprocess.run([str(KANSOKU), *command[1:], "--help"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{name}: {' '.join(command)}\n{done.stderr}"


def test_traffic_module_runs_as_a_script() -> None:
    """`python -m kansoku.demo.traffic` (the traffic service) exists and takes --url and --rate."""
    done = subprocess.run([sys.executable, "-m", "kansoku.demo.traffic", "--help"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "--url" in done.stdout and "--rate" in done.stdout


def test_environment_names_are_settings() -> None:
    """Every KANSOKU_* / OTEL_* variable given to the kansoku services is one Settings reads."""
    known = setting_env_names()
    for name, service in kansoku_services().items():
        for variable in service.get("environment", {}):
            if variable.startswith(("KANSOKU_", "OTEL_")):
                assert variable in known, f"{name}: {variable} is not a kansoku setting"


def test_configuration_file_is_valid(tmp_path: Path) -> None:
    """deploy/kansoku.toml passes `kansoku config check` (settings and alert rules)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANSOKU_", "OTEL_"))}
    env["KANSOKU_CONFIG"] = str(DEPLOY / "kansoku.toml")
    done = subprocess.run([str(KANSOKU), "config", "check", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert '"alertmanager"' in done.stdout


def test_dockerfile_copies_existing_paths() -> None:
    """The files the Dockerfile copies exist relative to the build context (the repository root)."""
    build = compose()["services"]["app"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    for line in (ROOT / build["dockerfile"]).read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), source

