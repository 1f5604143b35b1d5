"""The command line: parse, call, render. Nothing here knows file formats or rules."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Literal, NoReturn

import typer

from ropedoctor import __version__
from ropedoctor.errors import InputError
from ropedoctor.model.methods import FIX_TYPES
from ropedoctor.terminal import emit

app = typer.Typer(
    name="ropedoctor",
    help="Check, fix and serve RoPE (rotary position embedding) settings of HF and GGUF models.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    github = "github"


# --quiet: text output keeps only the findings that decide the exit code (errors; warnings too under --strict);
# documents (JSON, SARIF, shell) are printed whole, since a script asked for them; stderr and the exit code are
# unchanged.
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help=(
    "Print only what decides the exit code: error findings (and warnings with --strict)."))]


def _length(value: str | int) -> int:
    """--ctx as users write it (32768, 8k, 128K, 1m); typer turns the ValueError into its one-line usage error."""
    from ropedoctor.fmt import parse_length

    if isinstance(value, int):
        return value
    try:
        return parse_length(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


CTX_HELP = "tokens per sequence: 32768, 8k, 32K, 128k, 1m (k = 1024)"
CtxOption = Annotated[int | None, typer.Option("--ctx", parser=_length, metavar="N", help=f"Target length, {CTX_HELP}.")]
CtxRequired = Annotated[int, typer.Option("--ctx", parser=_length, metavar="N", help=f"Length to serve, {CTX_HELP}.")]
_SELECT_HELP = "Comma-separated rule codes, prefixes (RD2) or names; ALL for every rule."
Select = Annotated[list[str] | None, typer.Option("--select", metavar="RULES", help=(
    "Run only these rules (replaces the default set). " + _SELECT_HELP))]
ExtendSelect = Annotated[list[str] | None, typer.Option("--extend-select", metavar="RULES", help=(
    "Add these rules to the selection (RD209 is off by default). " + _SELECT_HELP))]
Ignore = Annotated[list[str] | None, typer.Option("--ignore", metavar="RULES", help="Skip these rules. " + _SELECT_HELP)]
ExtendIgnore = Annotated[list[str] | None, typer.Option("--extend-ignore", metavar="RULES", help=(
    "Skip these too, on top of the config file's ignore list. " + _SELECT_HELP))]
Isolated = Annotated[bool, typer.Option("--isolated", help=(
    "Ignore ropedoctor.toml and [tool.ropedoctor] in pyproject.toml."))]


class RulesFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def _fail(error: InputError) -> NoReturn:
    print(error.line, file=sys.stderr)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        print(f"ropedoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Check, fix and serve RoPE settings of HF and GGUF models."""


@app.command()
def check(
    paths: Annotated[list[str] | None, typer.Argument(help="Model folders or config.json files (default: .).")] = None,
    ctx: CtxOption = None,
    output: Annotated[CheckFormat, typer.Option(
        "--format", help="text, json, sarif (SARIF 2.1.0) or github (workflow annotations).")] = CheckFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="Count warnings as errors for the exit code.")] = False,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub revision for org/name paths.")] = None,
    quiet: Quiet = False,
    select: Select = None,
    extend_select: ExtendSelect = None,
    ignore: Ignore = None,
    extend_ignore: ExtendIgnore = None,
    isolated: Isolated = False,
) -> None:
    """Say what is wrong with a model's RoPE settings, and why.

    PATH: a model folder (its config.json and GGUF files), a config.json, a .gguf file, or a
    Hugging Face repo id (org/name, or org/name/file.gguf for just the GGUF header).

    Exit 0: no error finding; 1: an error finding (a warning too with --strict); 2: an input cannot be used.

    Example: ropedoctor check models/qwen2.5-7b --ctx 128k --format json
    """
    from ropedoctor.commands import run_check
    from ropedoctor.settings import cli_selectors

    raise typer.Exit(run_check(paths or ["."], ctx, output.value, strict, revision, quiet,
                               cli_selectors(select, extend_select, ignore, extend_ignore), isolated))


# --type choices: the fix types of the method table (model/methods.py).
MethodChoice = Enum("MethodChoice", {name: name for name in FIX_TYPES}, type=str)  # type: ignore[misc]


class StyleChoice(str, Enum):
    keep = "keep"
    v4 = "v4"
    v5 = "v5"
    both = "both"


class MaxPositionsChoice(str, Enum):
    auto = "auto"
    keep = "keep"
    extend = "extend"


@app.command()
def fix(
    path: Annotated[str, typer.Argument(help="A model folder, config.json or .gguf (default: .).")] = ".",
    ctx: CtxOption = None,
    method: Annotated[MethodChoice | None, typer.Option(
        "--type", help="linear (PI), dynamic (NTK), yarn, or ntk (a static NTK-aware base, no scaling block).")] = None,
    factor: Annotated[float | None, typer.Option("--factor", min=1.0, help="Scaling factor.")] = None,
    original: Annotated[int | None, typer.Option("--original", parser=_length, metavar="N", help=(
        "Trained (pre-scaling) length: 4096, 4k."))] = None,
    max_positions: Annotated[MaxPositionsChoice, typer.Option(
        "--max-position-embeddings",
        help="extend: set it to factor x original (default for yarn); keep: leave it.")] = MaxPositionsChoice.auto,
    style: Annotated[StyleChoice, typer.Option(
        "--style", help="config.json layout: keep, v4 (rope_scaling), v5 (rope_parameters), both.")] = StyleChoice.keep,
    out: Annotated[str | None, typer.Option("--out", help="Write the result here instead of in place.")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Rewrite the file itself (the default).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff; write nothing.")] = False,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Keep no .bak of the original.")] = False,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Write through a symlink.")] = False,
    restore: Annotated[bool, typer.Option("--restore", help=(
        "Undo the last fix of PATH from the backup it kept, and delete the backup."))] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    quiet: Quiet = False,
) -> None:
    """Write corrected RoPE settings into a config.json or GGUF, planned for a target length.

    --out DIR writes DIR/config.json (DIR/NAME.gguf); in place, the original is kept as a backup that
    `ropedoctor fix --restore PATH` puts back.

    Example: ropedoctor fix --factor 2 --type dynamic      (in a model folder)
    Example: ropedoctor fix models/qwen2.5-7b --ctx 128k --style both --dry-run
    Example: ropedoctor fix models/qwen2.5-7b --restore
    """
    from ropedoctor.commands import run_fix, run_restore
    from ropedoctor.fix_options import FixOptions
    from ropedoctor.plan import Target as PlanTarget

    if restore:
        asked = [name for name, value in (("--ctx", ctx), ("--type", method), ("--factor", factor),
                                          ("--original", original), ("--out", out), ("--dry-run", dry_run)) if value]
        if asked:
            _fail(InputError("fix", f"--restore takes only PATH, not {', '.join(asked)}"))
        raise typer.Exit(run_restore(path, output.value, quiet))

    if sum((bool(out), in_place, dry_run)) > 1:
        _fail(InputError("fix", "choose one of --out, --in-place, --dry-run"))
    mode: Literal["dry-run", "out", "in-place"] = "dry-run" if dry_run else "out" if out else "in-place"
    options = FixOptions(
        target=PlanTarget(ctx=ctx, method=method.value if method else None, factor=factor,
                          original=original, max_positions=max_positions.value),
        style=style.value, mode=mode, out=out, backup=not no_backup, follow_symlinks=follow_symlinks,
        output=output.value,
    )
    raise typer.Exit(run_fix(path, options, quiet))


class FlagsFormat(str, Enum):
    text = "text"
    json = "json"
    shell = "shell"


@app.command()
def flags(
    path: Annotated[str, typer.Argument(help="A model folder, config.json, .gguf or hub id (default: .).")] = ".",
    ctx: CtxRequired = ...,  # type: ignore[assignment]
    runtime: Annotated[list[str] | None, typer.Option(
        "--runtime", help="llama.cpp, llama-box, vllm, sglang, tgi, lmdeploy, ollama, transformers, or all.")] = None,
    runtime_version: Annotated[str | None, typer.Option("--runtime-version", help="Older semantics, e.g. 0.11.0.")]
    = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Concurrent sequences (slots).")] = 1,
    embedding: Annotated[bool, typer.Option("--embedding", help="Serve embeddings (whole input in one batch).")]
    = False,
    method: Annotated[MethodChoice | None, typer.Option("--type", help="Force a method (as fix).")] = None,
    factor: Annotated[float | None, typer.Option("--factor", min=1.0, help="Force a factor (as fix).")] = None,
    output: Annotated[FlagsFormat, typer.Option("--format", help="text, json or shell.")] = FlagsFormat.text,
    quiet: Quiet = False,
) -> None:
    """Print the flags each runtime needs to serve --ctx tokens with the RoPE fix would write.

    Example: ropedoctor flags nomic-embed-text-v1.5 --ctx 8192 --runtime llama.cpp --runtime llama-box
    """
    from ropedoctor.commands import run_flags

    raise typer.Exit(run_flags(path, ctx, runtime or [], runtime_version, parallel, embedding,
                               method.value if method else None, factor, output.value, quiet))


class KvDtype(str, Enum):
    f16 = "f16"
    bf16 = "bf16"
    fp8 = "fp8"
    q8_0 = "q8_0"
    q4_0 = "q4_0"


@app.command("plan")
def plan_command(
    path: Annotated[str, typer.Argument(help="A model folder, config.json, .gguf or hub id (default: .).")] = ".",
    ctx: CtxRequired = ...,  # type: ignore[assignment]
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Concurrent sequences (slots).")] = 1,
    kv_dtype: Annotated[KvDtype, typer.Option("--kv-dtype", help="KV cache element type.")] = KvDtype.f16,
    weights_dtype: Annotated[str | None, typer.Option(
        "--weights-dtype", help="Dtype for the weight estimate when the files do not tell the size (bf16, q4_k, ...).")]
    = None,
    runtime: Annotated[list[str] | None, typer.Option("--runtime", help=(
        "Show only these runtimes (any case, comma lists, aliases such as llamacpp or llama-server)."))] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
) -> None:
    """The ways to serve --ctx tokens side by side (factor, runtimes), and the memory bill.

    Example: ropedoctor plan fixtures/qwen2.5-7b-instruct --ctx 128k --parallel 2 --kv-dtype q8_0 --runtime vllm
    """
    from ropedoctor.plan_options import run_plan

    raise typer.Exit(run_plan(path, ctx, parallel, kv_dtype.value, weights_dtype, output.value, runtime))


@app.command("plot")
def plot_command(
    path: Annotated[str, typer.Argument(help="A model folder, config.json, .gguf or hub id (default: .).")] = ".",
    out: Annotated[str | None, typer.Option("--out", help=(
        "The PNG file to write (needs matplotlib: the plot extra); optional with --format json."))] = None,
    ctx: CtxOption = None,
    method: Annotated[MethodChoice | None, typer.Option("--type", help="Draw this method instead of the plan.")]
    = None,
    factor: Annotated[float | None, typer.Option("--factor", min=1.0, help="Factor for --type.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="json prints the numbers (no matplotlib needed).")]
    = OutputFormat.text,
) -> None:
    """Per rotary dimension: the wavelength and how much each method scales it.

    Example: ropedoctor plot fixtures/meta-llama-3.1-8b-instruct --ctx 256k --out llama3.png
    Example: ropedoctor plot fixtures/meta-llama-3.1-8b-instruct --ctx 256k --format json
    """
    from ropedoctor.plot import run_plot

    raise typer.Exit(run_plot(path, ctx, method.value if method else None, factor, out, output.value))


class SmokeBackend(str, Enum):
    transformers = "transformers"
    llama_cpp = "llama.cpp"


class SmokeDevice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class SmokeDtype(str, Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float32 = "float32"


@app.command()
def smoke(
    path: Annotated[str, typer.Argument(help="A model folder (config.json + safetensors) or a .gguf (default: .).")]
    = ".",
    ctx: CtxRequired = ...,  # type: ignore[assignment]
    backend: Annotated[SmokeBackend, typer.Option("--backend", case_sensitive=False, help="transformers or llama.cpp.")]
    = SmokeBackend.transformers,
    device: Annotated[SmokeDevice, typer.Option("--device", help="auto (cuda when present), cpu or cuda.")]
    = SmokeDevice.auto,
    dtype: Annotated[SmokeDtype, typer.Option("--dtype", help="auto: bfloat16 on GPU, float32 on CPU.")]
    = SmokeDtype.auto,
    checks: Annotated[str, typer.Option("--checks", help="Comma-separated: finite,passkey,perplexity,speed.")]
    = "finite,passkey,perplexity,speed",
    text: Annotated[str | None, typer.Option("--text", help="Text for perplexity (default: the bundled one).")]
    = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Passkey prompts per (length, depth) cell.")] = 5,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also score the unscaled model.")]
    = True,
    as_is: Annotated[bool, typer.Option("--as-is", help="Run the model unchanged (no planned fix).")] = False,
    method: Annotated[MethodChoice | None, typer.Option("--type", help="Force a method (as fix).")] = None,
    factor: Annotated[float | None, typer.Option("--factor", min=1.0, help="Force a factor (as fix).")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Folder for smoke.json and the PNG plots.")] = None,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", help="Memory the run may use per device (8GiB, 500MB); refused before loading if short.")]
    = None,
    pass_passkey: Annotated[float, typer.Option("--pass-passkey", min=0.0, max=1.0,
                                                help="Passkey accuracy needed at every length.")] = 0.8,
    pass_passkey_digits: Annotated[float, typer.Option("--pass-passkey-digits", min=0.0, max=1.0,
                                                       help="The same for the digits variant.")] = 0.6,
    pass_loss_ratio: Annotated[float, typer.Option("--pass-loss-ratio", min=1.0, help=(
        "Worst bucket loss past the original window / in-window loss."))] = 1.15,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the passkey keys and fillers.")] = 0,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    max_time: Annotated[float | None, typer.Option(
        "--max-time", min=1.0, help="Seconds; stop there and report the partial results (exit 1).")] = None,
    passkey_variants: Annotated[str, typer.Option("--passkey-variants", help="classic,digits or one of them.")]
    = "classic,digits",
    share_prefix: Annotated[bool, typer.Option("--share-prefix/--no-share-prefix", help=(
        "Passkey prompts reuse the KV cache of their shared filler (the same answers, less work)."))] = True,
) -> None:
    """Run the model with its planned RoPE at --ctx tokens: finite logits, passkey, perplexity, speed.

    Exit 0: every check passed; 1: a check failed; 2: the model or an option cannot be used.

    Example: ropedoctor smoke models/llama-3.2-1b --ctx 32768 --trials 3 --out smoke-report
    """
    from pathlib import Path

    from ropedoctor.smoke.estimate import parse_size
    from ropedoctor.smoke.request import Thresholds
    from ropedoctor.smoke.run import build_request, parse_checks, parse_variants, run_smoke

    try:
        request = build_request(
            path, ctx, backend.value, method=method.value if method else None, factor=factor,
            device=device.value, dtype=dtype.value, checks=parse_checks(checks),
            text=Path(text) if text else None, trials=trials, baseline=baseline, as_is=as_is,
            out=Path(out) if out else None, format=output.value, seed=seed,
            max_memory=parse_size(max_memory) if max_memory else None,
            thresholds=Thresholds(pass_passkey, pass_passkey_digits, pass_loss_ratio), max_time=max_time,
            variants=parse_variants(passkey_variants), share_prefix=share_prefix)
    except InputError as error:
        _fail(error)
    raise typer.Exit(run_smoke(request))


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="The reference: a config.json, a model folder, a GGUF or a hub id.")],
    b: Annotated[str, typer.Argument(help="The file to compare with it (typically the converted GGUF).")],
    ctx: CtxOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub revision for org/name paths.")] = None,
    quiet: Quiet = False,
    select: Select = None,
    extend_select: ExtendSelect = None,
    ignore: Ignore = None,
    extend_ignore: ExtendIgnore = None,
    isolated: Isolated = False,
) -> None:
    """Compare two sources: what a conversion changed or lost (theta, factor, lengths, method).

    Example: ropedoctor compare Qwen2.5-7B-Instruct/config.json qwen2.5-7b-instruct-q4_k_m.gguf
    """
    from ropedoctor.commands import run_compare
    from ropedoctor.settings import cli_selectors

    raise typer.Exit(run_compare(a, b, ctx, output.value, revision, quiet,
                                 cli_selectors(select, extend_select, ignore, extend_ignore), isolated))


@app.command()
def scan(
    root: Annotated[str | None, typer.Argument(help="Folder to search for models (default: .).")] = None,
    hf_cache: Annotated[bool, typer.Option("--hf-cache", help="Scan the local Hugging Face cache instead.")] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    quiet: Quiet = False,
    select: Select = None,
    extend_select: ExtendSelect = None,
    ignore: Ignore = None,
    extend_ignore: ExtendIgnore = None,
    isolated: Isolated = False,
) -> None:
    """One summary row for every model (config.json or GGUF) under a folder or in the HF cache.

    Example: ropedoctor scan ~/models --format json
    """
    from ropedoctor.commands import run_scan
    from ropedoctor.settings import cli_selectors

    raise typer.Exit(run_scan(root, hf_cache, output.value, quiet,
                              cli_selectors(select, extend_select, ignore, extend_ignore), isolated))


@app.command("rules")
def list_rules(
    output: Annotated[RulesFormat, typer.Option("--format", help="Output format.")] = RulesFormat.text,
) -> None:
    """List every rule: code, name, severity and what it does.

    Example: ropedoctor rules --format markdown > docs/rules.md
    """
    from ropedoctor import report
    from ropedoctor.rules import RULES

    rules = sorted(RULES.values(), key=lambda r: r.code)
    if output is RulesFormat.markdown:
        sys.stdout.write(report.rules_markdown(rules))
    elif output is RulesFormat.json:
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "default": r.default, "doc": r.doc}
                          for r in rules], indent=2))
    else:
        emit(report.rules_lines(rules))


@app.command("rule")
def show_rule(code: Annotated[str, typer.Argument(help="A rule code (RD101) or name (missing-required-key).")]) -> None:
    """Print one rule's documentation.

    Example: ropedoctor rule RD207
    """
    from ropedoctor import report
    from ropedoctor.rules import RULES

    wanted = code.strip()
    found = RULES.get(wanted.upper()) or next((r for r in RULES.values() if r.name == wanted.lower()), None)
    if found is None:
        _fail(InputError(code, f"no such rule; `ropedoctor rules` lists the {len(RULES)} rules"))
    emit(report.rule_lines(found))
