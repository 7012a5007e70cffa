"""The tests exercise the installed wheel, not client/python/src (run-tests.sh installs it)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import burr_grpc_persister
from burr_grpc_persister._gen import state_persister_pb2
from conftest import SOURCE_TREE, installed_location_problem


def test_package_is_imported_from_site_packages():
    assert installed_location_problem() is None


def test_package_is_the_installed_distribution():
    distribution = importlib.metadata.distribution("burr-grpc-persister")
    installed = Path(distribution.locate_file("burr_grpc_persister/__init__.py")).resolve()
    assert Path(burr_grpc_persister.__file__).resolve() == installed
    assert not Path(state_persister_pb2.__file__).resolve().is_relative_to(SOURCE_TREE)


def test_installed_files_are_the_source_files():
    """The wheel ships every module, stub, .pyi and py.typed of src/burr_grpc_persister, and no tests."""
    distribution = importlib.metadata.distribution("burr-grpc-persister")
    installed = {
        file.as_posix()
        for file in distribution.files or ()
        if file.parts[0] == "burr_grpc_persister" and file.suffix != ".pyc"
    }
    source = {
        path.relative_to(SOURCE_TREE).as_posix()
        for path in (SOURCE_TREE / "burr_grpc_persister").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert installed == source
    assert {"burr_grpc_persister/py.typed", "burr_grpc_persister/_gen/state_persister_pb2.pyi"} <= installed
    assert not any(file.parts[0] in ("tests", "conftest.py") for file in distribution.files or ())
