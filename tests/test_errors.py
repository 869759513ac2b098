"""errors.py draws its exception tree in its docstring: the drawing is the tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import scrubber
from scrubber import errors


def _drawn() -> dict[str, tuple[str | None, int]]:
    """Class name -> (parent drawn above it, exit code drawn, else 1)."""
    drawn: dict[str, tuple[str | None, int]] = {}
    parents: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        found = re.fullmatch(r"( *)[*x+-] (\w+)(?: \(.*\))?(?: \[(\d)\])?", line)
        if not found:
            continue
        depth = len(found[1]) // 2
        del parents[depth:]
        drawn[found[2]] = (parents[-1] if parents else None, int(found[3] or 1))
        parents.append(found[2])
    return drawn


def test_the_docstring_draws_every_error_with_its_parent_and_exit_code() -> None:
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ScrubberError)
    }
    actual = {
        name: (
            next((b.__name__ for b in cls.__bases__ if b.__name__ in classes), None),
            cls.exit_code,
        )
        for name, cls in classes.items()
    }
    assert _drawn() == actual


def test_no_exception_class_lives_outside_errors_py_but_the_internal_signals() -> None:
    elsewhere = set()
    for info in pkgutil.walk_packages(scrubber.__path__, "scrubber."):
        if (
            info.name == "scrubber.errors"
            or ".migrations" in info.name
            or info.name.endswith("__main__")
        ):
            continue
        module = importlib.import_module(info.name)
        elsewhere |= {
            f"{module.__name__}.{name}"
            for name, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__
        }
    # The two the docstring names as signals that never reach a user.
    assert elsewhere == {"scrubber.listener.channel.ChannelClosed", "scrubber.esp.RowError"}
    assert issubclass(errors.SchemeError, ValueError)  # what callers of the scheme catch
