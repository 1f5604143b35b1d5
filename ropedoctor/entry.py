"""The console entry point: a fast path for plain `check` runs, typer for everything else.

`ropedoctor check PATH...` runs in pre-commit hooks and CI over many files, so it must start
about as fast as importing its libraries (bench/startup.py). Building the typer app costs
more than that on its own, so argv lists made only of paths and the `check` options below are
parsed here; anything else (help, completion, a malformed value) goes to typer, which owns
the messages. tests/test_entry.py runs both parsers on the same argv and compares.
"""

from __future__ import annotations

import os
import sys

_FORMATS = ("text", "json", "sarif", "github")


def parse_fast_check(argv: list[str]) -> tuple[list[str], int | None, str, bool, bool] | None:
    """(paths, ctx, format, strict, quiet) when argv is a plain `check` run, else None (typer decides)."""
    if not argv or argv[0] != "check":
        return None
    paths: list[str] = []
    ctx: int | None = None
    output, strict, quiet = "text", False, False
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            paths.extend(args)
            break
        name, eq, inline = arg.partition("=")
        if name in ("--ctx", "--format"):
            value = inline if eq else next(args, None)
            if value is None:
                return None
            if name == "--ctx":
                if not value.isdigit() or int(value) < 1:
                    return None
                ctx = int(value)
            elif value in _FORMATS:
                output = value
            else:
                return None
        elif arg == "--strict":
            strict = True
        elif arg in ("--quiet", "-q"):
            quiet = True
        elif arg.startswith("-"):
            return None
        else:
            paths.append(arg)
    return paths or ["."], ctx, output, strict, quiet


def main() -> None:
    """Run ropedoctor; no traceback reaches the user (ROPEDOCTOR_DEBUG=1 shows it)."""
    try:
        fast = parse_fast_check(sys.argv[1:])
        if fast is not None:
            from ropedoctor.commands import run_check

            paths, ctx, output, strict, quiet = fast
            sys.exit(run_check(paths, ctx, output, strict, quiet=quiet))
        try:  # typer >= 0.29 vendors click; its usage errors are these classes, not click's
            from typer._click import exceptions as click
        except ImportError:
            from click import exceptions as click  # type: ignore[no-redef]

        from ropedoctor.cli import app

        try:
            code = app(standalone_mode=False)
        except click.NoArgsIsHelpError as exc:  # bare `ropedoctor`: the help, as before
            print(exc.format_message(), file=sys.stderr)
            sys.exit(2)
        except click.UsageError as exc:  # a bad option or value: one line, like every other bad input
            command = exc.ctx.command_path if exc.ctx is not None else \
                " ".join(["ropedoctor", *[arg for arg in sys.argv[1:2] if not arg.startswith("-")]])
            where = f" (see `{command} --help`)"
            print(f"ropedoctor: error: {exc.format_message()}{where}", file=sys.stderr)
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        print("ropedoctor: error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly, as a process killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        sys.exit(141)
    except Exception as exc:  # a bug: one line, not a traceback
        if os.environ.get("ROPEDOCTOR_DEBUG"):
            raise
        print(f"ropedoctor: error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
