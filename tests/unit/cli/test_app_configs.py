"""Where the installed commands (srdistill-train, -eval, -export) find their configs: the source
checkout's conf/, or the package srdistill.conf that pyproject.toml ships it as."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra._internal.core_plugins.importlib_resources_config_source import (
    ImportlibResourcesConfigSource,
)
from hydra.core.object_type import ObjectType

from srdistill.cli import app
from tests.helpers.shared import REPO_ROOT

CONF = REPO_ROOT / "conf"
PRIMARY = {"train", "eval", "export", "efficiency"}


def configs_on_disk(group: str) -> set[str]:
    return {p.stem for p in (CONF / group).glob("*.yaml")}


def test_code_run_from_the_checkout_composes_its_conf_folder():
    assert app.config_path() == str(CONF)


def test_an_installed_copy_composes_the_configs_package(monkeypatch, tmp_path):
    installed = tmp_path / "lib" / "site-packages" / "srdistill" / "cli" / "app.py"
    monkeypatch.setattr(app, "__file__", str(installed))
    assert app.config_path() == "pkg://srdistill.conf"


def test_the_configs_package_lists_every_config_of_conf():
    if importlib.util.find_spec(app.CONFIG_PACKAGE) is None:
        pytest.skip("srdistill was installed before conf/ became srdistill.conf: make install")
    source = ImportlibResourcesConfigSource("main", f"pkg://{app.CONFIG_PACKAGE}")
    assert source.available()
    assert PRIMARY <= set(source.list("", ObjectType.CONFIG))
    for group in ("loss", "model", "experiment", "teacher/zoo"):
        assert set(source.list(group, ObjectType.CONFIG)) == configs_on_disk(group), group


def test_pyproject_lists_every_package_folder():
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    src = REPO_ROOT / "src"
    folders = {".".join(init.parent.relative_to(src).parts) for init in src.rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {app.CONFIG_PACKAGE}
    assert Path(setuptools["package-dir"][app.CONFIG_PACKAGE]) == CONF.relative_to(REPO_ROOT)
