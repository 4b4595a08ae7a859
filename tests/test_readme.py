"""The README's command reference and the CLI's --help describe the same options."""

import re
from pathlib import Path

import pytest

from fitagent.agent.cli import COMMANDS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _readme_row(command: str) -> str:
    rows = [line for line in README.splitlines() if line.startswith(f"| `fitagent {command}")]
    assert rows, f"README's command table has no row for `fitagent {command}`"
    return rows[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_readme_row_lists_exactly_the_options_of_help(cli, command):
    help_text = cli(command, "--help").stdout
    in_help = set(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, flags=re.M)) - {"--help", "--json"}
    synopsis = re.match(r"\| `([^`]*)`", _readme_row(command)).group(1)
    in_readme = set(re.findall(r"--[a-z0-9-]+", synopsis)) - {"--json"}
    assert in_help == in_readme, f"`fitagent {command}`: README row vs --help"


def test_every_command_is_in_the_readme():
    for command in COMMANDS:
        _readme_row(command)
