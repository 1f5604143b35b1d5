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
from dataclasses import dataclass, field

_FORMATS = ("text", "json", "sarif", "github")
_SELECTORS = ("--select", "--extend-select", "--ignore", "--extend-ignore")


@dataclass
class FastCheck:
    """A plain `check` run's arguments, as the typer command would receive them."""

    paths: list[str]
    ctx: int | None = None
    output: str = "text"
    strict: bool = False
    quiet: bool = False
    isolated: bool = False
    selectors: dict[str, list[str]] = field(default_factory=dict)  # option name -> values, in order


def parse_fast_check(argv: list[str]) -> FastCheck | None:
    """The arguments when argv is a plain `check` run, else None (typer decides, and owns the messages)."""
    from ropedoctor.fmt import parse_length

    if not argv or argv[0] != "check":
        return None
    run = FastCheck([])
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            run.paths.extend(args)
            break
        name, eq, inline = arg.partition("=")
        if name in ("--ctx", "--format", *_SELECTORS):
            value = inline if eq else next(args, None)
            if value is None:
                return None
            if name == "--ctx":
                try:
                    run.ctx = parse_length(value)
                except ValueError:
                    return None
            elif name == "--format":
                if value not in _FORMATS:
                    return None
                run.output = value
            else:
                run.selectors.setdefault(name, []).append(value)
        elif arg == "--strict":
            run.strict = True
        elif arg in ("--quiet", "-q"):
            run.quiet = True
        elif arg == "--isolated":
            run.isolated = True
        elif arg.startswith("-"):
            return None
        else:
            run.paths.append(arg)
    run.paths = run.paths or ["."]
    return run


# The optional dependencies, by top-level module, and the extra that installs each (pyproject.toml).
OPTIONAL_MODULES = {"matplotlib": "plot", "torch": "smoke", "transformers": "smoke", "accelerate": "smoke",
                    "safetensors": "smoke", "tokenizers": "smoke", "llama_cpp": "smoke", "numpy": "smoke"}


def missing_dependency_line(exc: ImportError) -> str:
    """One line for a missing module: which command needs it, and the install line of its extra."""
    module = (exc.name or "").split(".")[0] or str(exc)
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "this command")
    extra = OPTIONAL_MODULES.get(module)
    if module == "ropedoctor" or not exc.name:  # our own import failing is a bug, not a missing extra
        return f"internal error: {type(exc).__name__}: {exc}"
    if extra is None:
        return f"`ropedoctor {command}` needs the Python module {module}, which is not installed ({exc})"
    return (f"`ropedoctor {command}` needs {module}, which is not installed: pip install 'ropedoctor[{extra}]' "
            f"(from a clone: pip install '.[{extra}]')")


def _inert(text: str) -> str:
    """One line, control characters escaped (an argument with a newline forges no second line)."""
    from ropedoctor.errors import inert

    return inert(text)


def main() -> None:
    """Run ropedoctor; no traceback reaches the user (ROPEDOCTOR_DEBUG=1 shows it)."""
    try:
        fast = parse_fast_check(sys.argv[1:])
        if fast is not None:
            from ropedoctor.commands import run_check
            from ropedoctor.settings import cli_selectors

            selectors = cli_selectors(*(fast.selectors.get(name) for name in _SELECTORS))
            sys.exit(run_check(fast.paths, fast.ctx, fast.output, fast.strict, quiet=fast.quiet, selectors=selectors,
                               isolated=fast.isolated))
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
            print(_inert(f"ropedoctor: error: {exc.format_message()}{where}"), file=sys.stderr)
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        print("ropedoctor: error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly, as a process killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        sys.exit(141)
    except ImportError as exc:  # an optional dependency that is not installed: name the extra that brings it
        if os.environ.get("ROPEDOCTOR_DEBUG"):
            raise
        print(f"ropedoctor: error: {missing_dependency_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # a bug: one line, not a traceback
        if os.environ.get("ROPEDOCTOR_DEBUG"):
            raise
        print(_inert(f"ropedoctor: error: internal error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        sys.exit(2)
