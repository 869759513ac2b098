"""Command-line interface: parses arguments, calls the library, prints.

No logic lives here; every command is a thin shell over a library function.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from scrubber import __version__
from scrubber.cli.context import AppContext
from scrubber.errors import ScrubberError

# Command name -> module under scrubber.cli. Modules are imported only when
# their command runs (or for --help), so `scrubber list import` does not pay
# for aiohttp, aiosmtpd and the report renderers at start-up.
COMMAND_MODULES = {
    "init": "workspacecmd",
    "list": "listcmd",
    "suppress": "suppresscmd",
    "unsubscribe": "unsubscribecmd",
    "scheme": "schemecmd",
    "batch": "batchcmd",
    "listen": "listencmd",
    "responder": "respondercmd",
    "report": "reportcmd",
    "status": "reportcmd",
    "key": "keycmd",
    "demo": "democmd",
}


class LazyGroup(click.Group):
    """The top-level group; loads each command group's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"scrubber.cli.{module_name}")
        commands: list[click.Command] = module.COMMANDS
        return next((c for c in commands if c.name == cmd_name), None)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="scrubber")
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SCRUBBER_WORKSPACE",
    help="Workspace directory (default: $SCRUBBER_WORKSPACE, else the current directory).",
)
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None) -> None:
    """Honour a hashed Do-Not-Email registry: hash your lists, post them,
    collect opt-outs, suppress, and report.

    \b
    Quick start:
      scrubber init myshop && cd myshop
      scrubber list import customers customers.csv
      scrubber batch create customers && scrubber batch post BATCH
      scrubber listen
    """
    app = AppContext(workspace_path=workspace)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _workspace_first(args: list[str]) -> list[str]:
    """Move ``-w DIR`` / ``--workspace DIR`` given after the subcommand to the
    front, so the option works wherever an operator types it."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg in ("-w", "--workspace") and index + 1 < len(args):
            front += args[index : index + 2]
            index += 2
            continue
        if arg.startswith("--workspace="):
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    """Entry point: turns every expected failure into one line and an exit code."""
    # Whatever scrubber writes is the operator's alone unless a command says
    # otherwise (reports, export --mode): lists, hashes and keys are private.
    os.umask(0o077)
    args = _workspace_first(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="scrubber", standalone_mode=False)
    except ScrubberError as error:
        click.echo(f"error: {error.message}", err=True)
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted; nothing partial was stored", err=True)
        return 130
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx else "scrubber"
        click.echo(f"error: {error.format_message()} (see '{where} --help')", err=True)
        return error.exit_code
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        return error.exit_code
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except BrokenPipeError:
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
