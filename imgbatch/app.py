"""Per-invocation plumbing shared by all commands: dependencies, settings, output, errors.

Exit codes: 0 ok; 1 the batch has failures (a file not uploaded, or a final status other than
`completed` after --wait/--download), or a confirmation was declined; 2 usage error (click's
own, unknown names, no images); 3 API or network error; 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn, Sequence

import click
import httpx
from rich.console import Console
from rich.text import Text

from imgbatch import render, tables
from imgbatch.client import ApiClient, ApiError, make_storage_client
from imgbatch.config import ConfigError, Settings, resolve_settings
from imgbatch.tables import Cell, Grid

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_INTERRUPTED = 130


@dataclass
class Deps:
    """Everything the CLI reaches outside this process.

    Tests hand their own to `CliRunner.invoke(cli, args, obj=Deps(...))`: fake transports for
    the API and for S3, an instant sleep, and a fixed environment.
    """

    api_transport: httpx.BaseTransport | None = None
    storage_transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] | None = None  # None: real time
    env: Mapping[str, str] | None = None  # None: os.environ

    def make_api_client(self, settings: Settings, sleep: Callable[[float], None]) -> ApiClient:
        return ApiClient(settings.api_url, settings.token, transport=self.api_transport, sleep=sleep)

    def make_storage_client(self) -> httpx.Client:
        return make_storage_client(self.storage_transport)


class App:
    """Per-invocation state: settings, output streams, and lazily opened HTTP clients."""

    def __init__(self, deps: Deps, flags: dict[str, Any]) -> None:
        self.deps = deps
        self.json = bool(flags.pop("json_mode"))
        self._flags = flags
        self._settings: Settings | None = None
        self._api: ApiClient | None = None
        self._storage: httpx.Client | None = None
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    @property
    def settings(self) -> Settings:
        # Resolved on first use, so `--help` works even with a broken config file.
        if self._settings is None:
            env = self.deps.env if self.deps.env is not None else os.environ
            try:
                self._settings = resolve_settings(env=env, **self._flags)
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from exc
        return self._settings

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = self.deps.make_api_client(self.settings, self.sleep)
        return self._api

    @property
    def storage(self) -> httpx.Client:
        if self._storage is None:
            self._storage = self.deps.make_storage_client()
        return self._storage

    def sleep(self, seconds: float) -> None:
        (self.deps.sleep or time.sleep)(seconds)

    @property
    def token_source(self) -> str:
        return self._settings.token_source if self._settings else "unknown"

    @property
    def show_progress(self) -> bool:
        return not self.json and self.err.is_terminal

    def emit(self, data: Any) -> None:
        """The one way anything reaches stdout in --json mode."""
        click.echo(json.dumps(data, indent=2, sort_keys=False))

    def say(self, renderable: Any) -> None:
        """Human output on stdout; silent in --json mode so stdout stays parseable.

        Plain strings are printed without markup: batch and file names are user data and may
        contain [brackets]. Pass a rich Text for styling.
        """
        if not self.json:
            # soft_wrap: let the terminal wrap long lines, so ids and commands stay copyable.
            self.out.print(renderable, markup=False, soft_wrap=isinstance(renderable, (str, Text)))

    def table(self, grid: Grid) -> list[str]:
        """A table fitted to the terminal, or tab-separated and whole in a pipe (tables.py).

        Returns the headers of the columns shown (on a narrow terminal, not all of them).
        """
        if self.json:
            return []
        if not self.out.is_terminal:
            click.echo(tables.to_tsv(grid))
            return [c.header for c in grid.columns]
        keep = tables.fit(grid, self.out.width)
        self.out.print(tables.to_rich(grid, self.out.width, keep))
        return [grid.columns[i].header for i in keep]

    def details(self, rows: Sequence[tuple[str, Cell]]) -> None:
        """Label/value lines; in a pipe each value is printed whole, however long."""
        if self.json:
            return
        if self.out.is_terminal:
            self.out.print(render.details_grid(rows))
        else:
            click.echo(render.details_plain(rows))

    def warn(self, message: str) -> None:
        self.err.print(message, style="yellow", markup=False, soft_wrap=True)

    def note(self, message: str) -> None:
        self.err.print(message, markup=False, soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print(f"Error: {message}", style="red", markup=False, soft_wrap=True)

    def close(self) -> None:
        for client in (self._api, self._storage):
            if client is not None:
                client.close()


class ImgbatchGroup(click.Group):
    """Turns API errors and Ctrl-C into a message and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            report_api_error(ctx.find_object(App), exc)
            ctx.exit(EXIT_API)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def report_api_error(app: App | None, exc: ApiError) -> None:
    app = app or App(Deps(), {"json_mode": False})
    if exc.status == 401:
        source = app.token_source
        app.error(f"the API did not accept the token (HTTP 401): {exc.message}")
        app.note(f"Set IMGBATCH_TOKEN or pass --token (the token in use came from {source}).")
    else:
        app.error(str(exc))
        if len(exc.errors) > 1:  # every problem the API found, one field a line
            for problem in exc.errors:
                app.note(f"  {problem['field']}: {problem['message']}")


def json_option(command: Callable) -> Callable:
    """`--json` after the command name too (`imgbatch list --json`), same as the global flag."""

    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(App).json = True

    return click.option(
        "--json", "json_flag", is_flag=True, expose_value=False, callback=enable,
        help="Print the API objects as JSON on stdout and nothing else.",
    )(command)


pass_app = click.make_pass_decorator(App)


def fail(code: int) -> NoReturn:
    click.get_current_context().exit(code)


