"""The command line's list of commands matches the commands its modules define.

``dbops --help`` is printed from that list without importing the modules, so a command missing from
it, or a one-line help that no longer matches the command's docstring, would go unnoticed there.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from deployments.cli import SUBCOMMANDS, command_line
from deployments.cli.lazy import module_commands, real_command


def test_every_module_registers_exactly_the_commands_listed_for_it() -> None:
    listed: defaultdict[str, set[str]] = defaultdict(set)
    for name, subcommand in SUBCOMMANDS.items():
        listed[subcommand.module].add(name)
    assert {module: set(module_commands(module)) for module in listed} == listed


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    command = real_command(SUBCOMMANDS[name].module, name)
    # The first paragraph, as click lists it; a command's own --help may say more below it.
    assert (command.short_help or (command.help or "").split("\n\n")[0]) == SUBCOMMANDS[name].help


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_the_group_runs_the_real_command(name: str) -> None:
    stand_in = command_line().commands[name]
    # Resilient parsing: no command's required options or no-arguments help get in the way here.
    with stand_in.make_context(name, [], resilient_parsing=True) as context:
        assert context.command is real_command(SUBCOMMANDS[name].module, name)
