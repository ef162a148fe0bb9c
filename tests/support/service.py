"""What a test starts it must stop: the `with` protocol every test server and process shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Service(ABC):
    """A server or process a test starts and always stops: `with service:` does both."""

    @abstractmethod
    def start(self) -> Self:
        """Start, and return once ready to be used."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and release everything held; safe to call twice, and before `start`."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
