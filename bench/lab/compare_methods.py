"""What each RoPE scaling method does to a model that has learned positions: ``ropedoctor smoke`` on the lab model.

    nice -n 5 .venv/bin/python bench/lab/compare_methods.py [--trials K] [--finetune-steps N] [--work DIR]

For every method (none, linear = PI, dynamic NTK, static NTK base, YaRN; factor 4, i.e. planned for 1024 tokens)
it runs the real CLI once, ``ropedoctor smoke fixtures/tiny-trained --ctx 2048 --type T --factor 4 --checks
passkey,perplexity --text <held-out text> --format json --out DIR`` (``--as-is`` for no scaling): smoke's passkey
check runs at N/4, N/2 and N plus its control at the trained length, i.e. at 256, 512, 1024 and 2048 tokens, and
its perplexity pass over 2048 tokens gives the loss in each 256-token bucket. With a fixed factor the planned
config is the same for every --ctx, so one run per method measures all four lengths. Linear and YaRN are also fine-tuned briefly at the longer length: ``ropedoctor fix --type T
--factor 4`` writes the scaled config.json into a copy of the model, the lab's training loop continues on 1024-token
sequences, and the copy is smoked ``--as-is``. Perplexity is scored on the held-out last quarter of the bundled
text (the model was trained on the first three quarters).

Writes ``bench/lab/RESULTS.md`` (tables generated from the smoke JSON; the hand-written discussion between the
``<!-- discussion -->`` markers is kept across runs), ``bench/lab/results.json`` and ``bench/lab/plots/*.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from lab_data import SequenceSource, split_text  # noqa: E402
from lab_train import Schedule, seed_everything, train  # noqa: E402

MODEL = ROOT / "fixtures" / "tiny-trained"
TEXT = ROOT / "fixtures" / "text" / "us-constitution.txt"
LENGTHS = (256, 512, 1024, 2048)
FACTOR = 4.0
ORIGINAL = 256
FINETUNE_LENGTH = 1024


@dataclass(frozen=True)
class Setting:
    label: str  # the row name in the tables
    method: str  # what smoke is told: as-is, linear, dynamic, ntk, yarn
    finetuned: bool = False


SETTINGS = (
    Setting("none (extrapolation)", "as-is"),
    Setting("linear (PI)", "linear"),
    Setting("dynamic NTK", "dynamic"),
    Setting("static NTK base", "ntk"),
    Setting("YaRN", "yarn"),
    Setting("linear (PI) + fine-tune", "linear", finetuned=True),
    Setting("YaRN + fine-tune", "yarn", finetuned=True),
)


def ropedoctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ropedoctor", *args], capture_output=True, text=True, cwd=ROOT,
                          check=False)


def finetune(base: Path, method: str, folder: Path, steps: int, seed: int, log: Any) -> float:
    """A scaled copy of the model in ``folder`` (fix writes its config.json), trained ``steps`` more; seconds."""
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    started = time.perf_counter()
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(base / name, folder / name)
    fixed = ropedoctor("fix", str(folder), "--type", method, "--factor", f"{FACTOR:g}", "--in-place", "--no-backup")
    if fixed.returncode != 0:
        raise SystemExit(f"ropedoctor fix failed: {fixed.stderr or fixed.stdout}")
    config_text = (folder / "config.json").read_text()
    seed_everything(seed, 2)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    train_text, _ = split_text(TEXT.read_text(encoding="utf-8"))
    source = SequenceSource(lambda text: list(tokenizer.encode(text).ids),
                            list(tokenizer.encode(train_text, add_special_tokens=False).ids), seed)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    schedule = Schedule(steps=steps, lr=5e-4, warmup=20, batch_passkey=6, batch_text=2,
                        lengths=(FINETUNE_LENGTH * 3 // 4, FINETUNE_LENGTH))
    train(model, source, schedule, lambda line: log(f"  {method} fine-tune: {line}"))
    with tempfile.TemporaryDirectory() as saved:
        model.save_pretrained(saved, safe_serialization=True)
        shutil.copy2(Path(saved) / "model.safetensors", folder / "model.safetensors")
    (folder / "config.json").write_text(config_text)  # fix's config, not transformers' re-serialisation
    return time.perf_counter() - started


def smoke(model: Path, setting: Setting, ctx: int, text: Path, trials: int, out: Path) -> dict[str, Any]:
    """One ``ropedoctor smoke`` run, its JSON document (exit 1, a failed check, is a result like any other)."""
    scaling = ["--as-is"] if setting.method == "as-is" or setting.finetuned else \
        ["--type", setting.method, "--factor", f"{FACTOR:g}"]
    result = ropedoctor("smoke", str(model), "--ctx", str(ctx), *scaling, "--checks", "passkey,perplexity",
                        "--text", str(text), "--trials", str(trials), "--no-baseline", "--device", "cpu",
                        "--format", "json", "--out", str(out))
    if result.returncode not in (0, 1):
        raise SystemExit(f"ropedoctor smoke {setting.label} --ctx {ctx} failed: {result.stderr.strip()}")
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """The numbers the tables use from one smoke document: passkey per variant and length, loss per bucket."""
    checks = {c["name"]: c for c in doc["checks"]}
    passkey: dict[str, dict[str, Any]] = {"classic": {}, "digits": {}}
    for row in checks["passkey"]["lengths"]:
        passkey[row["variant"]][str(row["length"])] = {k: row[k] for k in ("accuracy", "n", "correct", "ci95")}
    perplexity = checks["perplexity"]
    return {
        "ctx": doc["ctx"], "rope": doc["rope"], "plan": doc["plan"], "passkey": passkey,
        "buckets": [{"start": b["start"], "end": b["end"], "loss": b["loss"]} for b in perplexity["buckets"]],
        "curve": perplexity["curve"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--trials", type=int, default=4, help="passkey prompts per (length, depth) cell")
    parser.add_argument("--finetune-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep the fine-tuned models and smoke output here")
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md and plots from results.json")
    args = parser.parse_args(argv)
    if args.report_only:
        from lab_results import write_plots, write_results

        saved = json.loads((HERE / "results.json").read_text())
        write_plots(saved, HERE / "plots")
        write_results(saved, HERE / "RESULTS.md")
        return 0

    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="ropedoctor-lab-"))
    work.mkdir(parents=True, exist_ok=True)
    _, heldout = split_text(TEXT.read_text(encoding="utf-8"))
    text = work / "heldout.txt"
    text.write_text(heldout, encoding="utf-8")

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {line}", flush=True)

    finetune_seconds: dict[str, float] = {}
    models: dict[str, Path] = {}
    for setting in SETTINGS:
        if setting.finetuned:
            folder = work / f"finetuned-{setting.method}"
            if not (folder / "model.safetensors").exists():
                finetune_seconds[setting.method] = finetune(args.model, setting.method, folder, args.finetune_steps,
                                                            args.seed, log)
                log(f"{setting.label}: {finetune_seconds[setting.method]:.0f}s")
            models[setting.label] = folder
        else:
            models[setting.label] = args.model

    results: dict[str, dict[str, Any]] = {}
    for setting in SETTINGS:
        ctx = max(LENGTHS)
        doc = smoke(models[setting.label], setting, ctx, text, args.trials,
                    work / "smoke" / setting.label.replace(" ", "_").replace("(", "").replace(")", ""))
        results[setting.label] = summarise(doc)
        accs = results[setting.label]["passkey"]
        log(f"{setting.label}: " + "; ".join(f"{v} " + " ".join(f"{accs[v][str(L)]['accuracy']:.2f}" for L in LENGTHS)
                                             for v in ("classic", "digits")))

    from lab_results import write_plots, write_results

    record = {"factor": FACTOR, "original": ORIGINAL, "lengths": list(LENGTHS), "trials": args.trials,
              "finetune_steps": args.finetune_steps, "finetune_length": FINETUNE_LENGTH,
              "finetune_seconds": finetune_seconds, "text": "held-out last quarter of fixtures/text/us-constitution.txt",
              "settings": results, "seconds": time.perf_counter() - started}
    (HERE / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    write_plots(record, HERE / "plots")
    write_results(record, HERE / "RESULTS.md")
    log(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
