"""What GrpcStatePersister and AsyncGrpcStatePersister share: their settings, copying, pickling
and per-call options. How each one calls the server (threads or asyncio) stays in its own module."""

from __future__ import annotations

from typing import TypeVar

from burr.common.types import BaseCopyable

from .settings import ConnectionSettings

P = TypeVar("P", bound="PersisterBase")


class PersisterBase(BaseCopyable):
    """A persister made of ``settings`` and ``serde_kwargs`` alone: its constructor takes just
    those, and copies and unpickled instances are rebuilt from them."""

    settings: ConnectionSettings
    serde_kwargs: dict

    @classmethod
    def from_config(cls: type[P], config: dict) -> P:
        """Creates a persister from a dict with the keys of :meth:`from_values`."""
        return cls.from_values(**config)  # type: ignore[attr-defined]

    def set_serde_kwargs(self, serde_kwargs: dict):
        """Sets the serde_kwargs for the persister."""
        self.serde_kwargs = serde_kwargs

    def copy(self: P) -> P:
        """Same settings and serde_kwargs, its own channel (Burr copies persisters into parallel sub-apps)."""
        return type(self)(self.settings, self.serde_kwargs)  # type: ignore[call-arg]

    __copy__ = copy

    def __getstate__(self) -> dict:
        # Channels, locks and pipelines do not pickle (Ray ships persisters to workers): keep only settings.
        return {"settings": self.settings, "serde_kwargs": self.serde_kwargs}

    def __setstate__(self, state: dict):
        self.__init__(state["settings"], state["serde_kwargs"])  # type: ignore[misc]

    def _unary_options(self) -> dict:
        return {"timeout": self.settings.deadline_seconds, "metadata": self.settings.metadata()}

    def _delete_options(self) -> dict:
        return {"timeout": self.settings.delete_deadline_seconds, "metadata": self.settings.metadata()}

    def _list_options(self) -> dict:
        return {"timeout": self.settings.list_deadline_seconds, "metadata": self.settings.metadata()}
