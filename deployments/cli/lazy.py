"""Subcommands that are built only when they run, so listing them imports none of them.

Typer builds a command from its function, which means importing the module that holds it and, through
that module, its capability's whole stack: Alembic, psycopg, boto3, the flows. Built eagerly, every
subcommand made ``dbops --help`` and ``dbops db-url`` spend about a second in imports. The group holds
a stand-in per subcommand instead, with the name and one-line help that the listing shows; the module
is imported when the command is run or asked for its own ``--help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand
from typer.main import get_group

if TYPE_CHECKING:
    # typer vendors click; these are the classes its commands and contexts are made of.
    from typer._click import Command, Context


@dataclass(frozen=True)
class Subcommand:
    """Where a command lives and what ``dbops --help`` says of it.

    *module* is a module under ``deployments.cli`` with a ``register(app)`` function. *help* must equal
    the help the command itself carries (its docstring); a unit test holds the two together.
    """

    module: str
    help: str


class StandIn(TyperCommand):
    """A subcommand as the group lists it; everything past the listing goes to the real command."""

    def __init__(self, name: str, subcommand: Subcommand) -> None:
        super().__init__(name, help=subcommand.help)
        self.subcommand = subcommand

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any
    ) -> Context:
        # Running the command and showing its own --help both parse through here first, so this is the
        # one place that needs the real command; the context it makes holds that command.
        return real_command(self.subcommand.module, self.name).make_context(
            info_name, args, parent=parent, **extra
        )


def real_command(module: str, name: str | None) -> Command:
    command = module_commands(module).get(name or "")
    if command is None:
        raise LookupError(f"deployments.cli.{module} registers no command {name!r}")
    return command


@cache
def module_commands(module: str) -> Mapping[str, Command]:
    """The commands ``deployments.cli.<module>`` registers, built as Typer builds them for an app."""
    register: Callable[[typer.Typer], None] = importlib.import_module(f"deployments.cli.{module}").register
    holder = typer.Typer()  # what commands inherit from an app (markup, exception display) is its defaults
    register(holder)
    return get_group(holder).commands
