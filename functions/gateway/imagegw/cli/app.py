"""The ``imagegw`` command: generate images, run batches, list models, manage keys, see usage.

It talks to any OpenAI-compatible images API (``--base-url``, ``IMAGEGW_BASE_URL``; default the
``make dev`` gateway) with a key from ``--api-key`` or ``IMAGEGW_API_KEY``. Batches use the
gateway's async jobs when it offers them and plain calls when it does not.

Installed as a console script (pyproject ``[project.scripts]``); also ``python -m imagegw.cli``.
Not part of the Lambda package's dependencies: click and rich are development requirements.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imagegw import __version__
from imagegw.cli.batch import Batch, BatchFileError, read_prompts
from imagegw.cli.client import DEFAULT_BASE_URL, ApiError, ImagesClient
from imagegw.cli.files import cost_of, metadata, save_answer, slug, write_json
from imagegw.cli.progress import RichReporter, format_cost

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# `imagegw models` lists this many sizes per model (--json has them all).
MAX_SIZES_SHOWN = 5


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def connection_options(command: F) -> F:
    command = click.option(
        "--api-key",
        envvar="IMAGEGW_API_KEY",
        help="The API key (prefer the environment variable IMAGEGW_API_KEY).",
        show_envvar=True,
    )(command)
    return click.option(
        "--base-url",
        envvar="IMAGEGW_BASE_URL",
        default=DEFAULT_BASE_URL,
        show_default=True,
        show_envvar=True,
        help="The API's base URL, /v1 included, as for the openai client.",
    )(command)


def request_options(command: F) -> F:
    """The request parameters both generate and batch take (batch: defaults for each line)."""
    options = [
        click.option("-m", "--model", help="Model id, e.g. local/sketch (imagegw models)."),
        click.option("-n", "n", type=int, help="Images per request."),
        click.option("--size", help="e.g. 1024x1024 or auto."),
        click.option("--quality"),
        click.option("--style"),
        click.option("--background"),
        click.option("--output-format", type=click.Choice(["png", "jpeg", "webp"])),
        click.option(
            "-p",
            "--param",
            "params",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any other request parameter; VALUE is read as JSON when it parses.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def request_parameters(options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("model", "n", "size", "quality", "style", "background", "output_format"):
        if options.get(name) is not None:
            body[name] = options[name]
    for item in options.get("params") or ():
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        try:
            body[key] = json.loads(value)
        except ValueError:
            body[key] = value
    return body


def print_error(error: ApiError) -> None:
    console = _console(stderr=True)
    console.print(f"[red]error:[/red] {escape(error.describe())}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagegw")
def cli() -> None:
    """imagegw: generate images through an OpenAI-compatible gateway."""


@cli.command()
@click.argument("prompt")
@request_options
@click.option(
    "--response-format",
    type=click.Choice(["b64_json", "url"]),
    help="How the server returns images (the CLI saves files either way).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Directory for the images and their metadata JSON.",
)
@click.option("--idempotency-key", help="Send this Idempotency-Key (repeat a call safely).")
@connection_options
@click.pass_context
def generate(
    ctx: click.Context,
    /,
    prompt: str,
    output: Path,
    response_format: str | None,
    idempotency_key: str | None,
    base_url: str,
    api_key: str | None,
    **options: Any,
) -> None:
    """Generate images for PROMPT and save them with a metadata JSON file."""
    body = {"prompt": prompt, **request_parameters(options)}
    if response_format is not None:
        body["response_format"] = response_format
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(prompt)}"

    async def run() -> list[Path]:
        async with ImagesClient(base_url, api_key) as client:
            answer = await client.generate(body, idempotency_key=idempotency_key)
            files = await save_answer(answer.body, client, output, stem)
            meta = output / f"{stem}.json"
            write_json(
                meta,
                metadata(
                    request=body, answer=answer.body, files=files, request_id=answer.request_id
                ),
            )
            console = _console()
            for name in files:
                console.print(str(output / name))
            console.print(str(meta))
            cost = cost_of(answer.body)
            resolved = ", ".join(
                f"{key}={answer.body[key]}"
                for key in ("model", "size", "quality", "background", "output_format")
                if answer.body.get(key) is not None
            )
            summary = _console(stderr=True)
            summary.print(f"{len(files)} image(s) · {resolved}", markup=False)
            summary.print(
                f"request id {answer.request_id or '-'}"
                + (f" · cost ${cost:.4f}" if cost is not None else ""),
                markup=False,
            )
            return [output / name for name in files]

    ctx.exit(_run_async(run))


def _run_async(run: Callable[[], Any]) -> int:
    try:
        asyncio.run(run())
    except ApiError as exc:
        print_error(exc)
        return EXIT_FAILED
    except httpx.HTTPError as exc:
        _console(stderr=True).print(f"[red]error:[/red] {escape(f'{type(exc).__name__}: {exc}')}")
        return EXIT_FAILED
    return 0


@cli.command()
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the images, one metadata JSON per request, and failure records.",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--poll-interval", type=click.FloatRange(0.01), default=1.0, show_default=True, help="Seconds."
)
@click.option("--retry-failed", is_flag=True, help="Send requests that failed earlier again.")
@request_options
@connection_options
@click.pass_context
def batch(
    ctx: click.Context,
    /,
    prompts: Path,
    output: Path,
    concurrency: int,
    poll_interval: float,
    retry_failed: bool,
    base_url: str,
    api_key: str | None,
    **options: Any,
) -> None:
    """Generate every request of PROMPTS (JSONL) as async jobs; resumable.

    Each line is {"prompt": "...", "id"?: "file-stem", ...any request parameter} or a JSON
    string. Request options given here apply to lines that do not set them. Interrupt at any
    time and run the same command again: finished requests are skipped, and submitted ones are
    picked up by their Idempotency-Key instead of being generated again.
    """
    try:
        items = read_prompts(prompts.read_text(encoding="utf-8"), request_parameters(options))
    except BatchFileError as exc:
        _console(stderr=True).print(f"[red]error:[/red] {escape(str(prompts))}: {escape(str(exc))}")
        ctx.exit(EXIT_USAGE)
    console = _console(stderr=True)
    reporter = RichReporter(console)

    async def run() -> None:
        async with ImagesClient(base_url, api_key) as client:
            runner = Batch(
                client,
                output,
                reporter,
                concurrency=concurrency,
                poll_interval=poll_interval,
                retry_failed=retry_failed,
            )
            with reporter:
                await runner.run(items)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        totals = reporter.totals
        console.print(
            f"Interrupted after {totals.done} of {len(items)} requests. Run the same command "
            "again to resume: finished requests are skipped, submitted ones are not billed twice.",
            markup=False,
        )
        ctx.exit(EXIT_INTERRUPTED)
    totals = reporter.totals
    console.print(
        f"{totals.done} of {totals.jobs} requests done ({totals.skipped} from earlier runs), "
        f"{totals.images} images, {totals.failed} failed, {format_cost(totals)}. "
        f"Output: {output}",
        markup=False,
    )
    ctx.exit(EXIT_FAILED if totals.failed else 0)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The raw GET /v1/models list.")
@connection_options
@click.pass_context
def models(ctx: click.Context, as_json: bool, base_url: str, api_key: str | None) -> None:
    """The models the server offers, with what each accepts."""

    async def run() -> None:
        async with ImagesClient(base_url, api_key) as client:
            listed = await client.models()
        console = _console()
        if as_json:
            console.print_json(json.dumps(listed))
            return
        table = Table(box=None)
        table.add_column("model", no_wrap=True)
        for column in ("status", "n", "sizes", "quality", "formats"):
            table.add_column(column)
        for model in listed:
            capabilities = model.get("capabilities") or {}
            sizes = list(capabilities.get("sizes") or [])
            if len(sizes) > MAX_SIZES_SHOWN:
                sizes = [*sizes[:MAX_SIZES_SHOWN], f"+{len(sizes) - MAX_SIZES_SHOWN} more"]
            if capabilities.get("free_size"):
                sizes.append("WxH")
            table.add_row(
                escape(str(model.get("id"))),
                escape(str(model.get("status", ""))),
                str((capabilities.get("n") or {}).get("max", "")),
                escape(" ".join(sizes)),
                escape(" ".join(capabilities.get("qualities") or [])),
                escape(" ".join(capabilities.get("output_formats") or [])),
            )
        console.print(table)

    ctx.exit(_run_async(run))


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def keys(ctx: click.Context, arguments: tuple[str, ...]) -> None:
    """Client keys: create, revoke, list, budget, usage (imagegw keys --help)."""
    from imagegw.cli.keys import main as keys_main

    ctx.exit(keys_main(list(arguments), prog="imagegw keys"))


@cli.command()
@click.option("--start", help="First UTC day, YYYY-MM-DD (default: the 1st of this month).")
@click.option("--end", help="Last UTC day, YYYY-MM-DD (default: today).")
@click.option(
    "--group-by", type=click.Choice(["day", "model", "key"]), default="day", show_default=True
)
@click.option("--key", "keys", multiple=True, help="Only this key's usage (a usage:all key).")
@click.option("--table", help="Read the state table (AWS credentials) instead of the API.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@connection_options
@click.pass_context
def usage(
    ctx: click.Context,
    start: str | None,
    end: str | None,
    group_by: str,
    keys: tuple[str, ...],
    table: str | None,
    as_json: bool,
    base_url: str,
    api_key: str | None,
) -> None:
    """Requests, images and cost by day, model or key (GET /v1/usage; docs/costs.md)."""
    from imagegw.cli.usage_report import usage_report

    try:
        text = usage_report(
            table=table,
            url=None if table else base_url,
            start=start,
            end=end,
            group_by=group_by,
            keys=list(keys) or None,
            as_json=as_json,
            api_key=api_key,
        )
    except ValueError as exc:
        _console(stderr=True).print(f"error: {escape(str(exc))}")
        ctx.exit(2)
    click.echo(text, nl=False)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="imagegw")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILED)
    return 0
