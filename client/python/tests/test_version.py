"""The package's version is the repository's: the root package.json's, which is the contract's."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest

import burr_grpc_persister

PROJECT = Path(__file__).resolve().parents[1]
REPO_ROOT = PROJECT.parents[1]


def workspace_version() -> str:
    return json.loads((REPO_ROOT / "package.json").read_text())["version"]


def pyproject_version() -> str:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]


def test_pyproject_version_is_the_workspace_version():
    assert pyproject_version() == workspace_version()


def test_installed_distribution_has_the_workspace_version():
    assert importlib.metadata.version("burr-grpc-persister") == workspace_version()


def test_dunder_version_is_the_installed_distribution_version():
    assert burr_grpc_persister.__version__ == importlib.metadata.version("burr-grpc-persister")
