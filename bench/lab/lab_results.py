"""RESULTS.md and the plots from compare_methods' record: tables generated, never edited by hand.

The comparison with the published pattern is computed from the same numbers (each claim with the figures it rests
on and whether the tiny model agrees); the hand-written discussion between the markers is kept across runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN, END = "<!-- discussion -->", "<!-- /discussion -->"
VARIANTS = ("classic", "digits")
# Accuracy differences smaller than this are not claimed either way: with n = 20 per length, 0.05 vs 0.00 is one
# prompt, and the 95% intervals of two such rates overlap until they are about this far apart.
MARGIN = 0.2


def _better(a: float, b: float) -> str:
    """Is accuracy ``b`` better than ``a``: yes, **no** (worse), or within noise."""
    if b > a + MARGIN:
        return "yes"
    return "**no**" if b < a - MARGIN else "within noise"


def _acc(record: dict[str, Any], label: str, ctx: int, variant: str) -> float:
    value: float = record["settings"][label]["passkey"][variant][str(ctx)]["accuracy"]
    return value


def _bucket_loss(record: dict[str, Any], label: str, start: int) -> float | None:
    """The loss of bucket [start, start + original) of the pass over the longest length."""
    for bucket in record["settings"][label]["buckets"]:
        if bucket["start"] == start:
            value: float | None = bucket["loss"]
            return value
    return None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _yes(holds: bool) -> str:
    return "yes" if holds else "**no**"


def passkey_table(record: dict[str, Any], variant: str) -> list[str]:
    lengths = record["lengths"]
    n = record["settings"]["none (extrapolation)"]["passkey"][variant][str(lengths[-1])]["n"]
    lines = [f"| method ({variant}, n = {n} per length) | " + " | ".join(str(L) for L in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for label in record["settings"]:
        lines.append(f"| {label} | " + " | ".join(_fmt(_acc(record, label, L, variant)) for L in lengths) + " |")
    return lines


def loss_table(record: dict[str, Any]) -> list[str]:
    original, longest = record["original"], max(record["lengths"])
    starts = list(range(0, longest, original))
    lines = ["| method | " + " | ".join(f"{s}-{s + original}" for s in starts) + " |",
             "|---|" + "---|" * len(starts)]
    for label in record["settings"]:
        lines.append(f"| {label} | " + " | ".join(_fmt(_bucket_loss(record, label, s), 3) for s in starts) + " |")
    return lines


def claims(record: dict[str, Any]) -> list[str]:
    """Each published finding, the tiny model's numbers for it, and whether they agree."""
    none, pi, pi_ft = "none (extrapolation)", "linear (PI)", "linear (PI) + fine-tune"
    yarn, yarn_ft = "YaRN", "YaRN + fine-tune"
    original, target = record["original"], int(record["original"] * record["factor"])
    win = _bucket_loss(record, none, 0)
    rows: list[tuple[str, str, str]] = []
    for variant in VARIANTS:
        a0, a1 = _acc(record, none, original, variant), _acc(record, none, target, variant)
        rows.append((f"PI Table 1 / §2.2: without scaling, retrieval breaks beyond the trained window ({variant})",
                     f"none: {a0:.2f} at {original}, {a1:.2f} at {target}", _better(a1, a0)))
    beyond = _bucket_loss(record, none, target - original)
    rows.append(("PI Table 1: without scaling, loss blows up past the window",
                 f"none: {_fmt(win, 3)} in window, {_fmt(beyond, 3)} at {target - original}-{target}",
                 _yes(win is not None and beyond is not None and beyond > win + 0.5)))
    for variant in VARIANTS:
        a, b = _acc(record, pi, target, variant), _acc(record, pi_ft, target, variant)
        window = _acc(record, none, original, variant)
        rows.append((f"PI Table 3/4: interpolation plus a short fine-tune recovers ({variant}, at {target})",
                     f"PI {a:.2f} → PI + fine-tune {b:.2f} (none at {original}: {window:.2f})",
                     "yes" if b >= 0.8 * window else "partly" if b > a + MARGIN else "**no**"))
    lp, lf = _bucket_loss(record, pi, target - original), _bucket_loss(record, pi_ft, target - original)
    rows.append((f"PI Table 3: fine-tuning lowers PI's loss at the far end ({target - original}-{target})",
                 f"PI {_fmt(lp, 3)} → {_fmt(lf, 3)}", _yes(lp is not None and lf is not None and lf < lp)))
    for label in ("dynamic NTK", "static NTK base", yarn):
        for variant in VARIANTS:
            a, b = _acc(record, pi, target, variant), _acc(record, label, target, variant)
            rows.append((f"PR #705 / YaRN: {label} beats PI without fine-tuning ({variant}, at {target})",
                         f"PI {a:.2f}, {label} {b:.2f}", _better(a, b)))
    for label in ("dynamic NTK", "static NTK base", yarn):
        la, lb = _bucket_loss(record, pi, target - original), _bucket_loss(record, label, target - original)
        rows.append((f"PR #705: {label} has lower loss than PI without fine-tuning ({target - original}-{target})",
                     f"PI {_fmt(la, 3)}, {label} {_fmt(lb, 3)}", _yes(la is not None and lb is not None and lb < la)))
    for variant in VARIANTS:
        a, b = _acc(record, yarn, target, variant), _acc(record, yarn_ft, target, variant)
        rows.append((f"YaRN Table 1: fine-tuned YaRN retrieves at its target ({variant}, at {target})",
                     f"YaRN {a:.2f} → YaRN + fine-tune {b:.2f}", _yes(b >= 0.8)))
    longest = max(record["lengths"])
    for label in (pi_ft, yarn_ft):
        a = _acc(record, label, longest, "classic")
        rows.append((f"YaRN Table 2: past its target a fine-tuned model degrades again ({label}, at {longest})",
                     f"{_acc(record, label, target, 'classic'):.2f} at {target}, {a:.2f} at {longest}",
                     _better(a, _acc(record, label, target, "classic"))))
    lines = ["| published finding | tiny model | agrees |", "|---|---|---|"]
    lines += [f"| {claim} | {numbers} | {verdict} |" for claim, numbers, verdict in rows]
    return lines


def write_results(record: dict[str, Any], path: Path) -> None:
    kept = f"{BEGIN}\n(discussion to be written)\n{END}"
    if path.exists():
        old = path.read_text()
        if BEGIN in old and END in old:
            kept = old[old.index(BEGIN): old.index(END) + len(END)]
    from ropedoctor.smoke.checks import wilson_interval

    n = record["settings"]["none (extrapolation)"]["passkey"]["classic"][str(max(record["lengths"]))]["n"]
    low, high = wilson_interval(round(0.8 * n), n)
    ft = ", ".join(f"{m} {s:.0f} s" for m, s in record["finetune_seconds"].items()) or "reused from --work"
    lines = [
        "# What each RoPE scaling method does to a tiny model that has learned positions",
        "",
        "Generated by `bench/lab/compare_methods.py` from `ropedoctor smoke` JSON (the discussion section is "
        "written by hand). Model: `fixtures/tiny-trained` (trained at "
        f"{record['original']} tokens, see its README). Every scaled method uses factor {record['factor']:g} "
        f"(planned for {int(record['original'] * record['factor'])} tokens), applied in memory by smoke "
        "(`--type T --factor 4`); no scaling is `--as-is`. The fine-tuned rows are copies whose config.json "
        f"`ropedoctor fix --type T --factor 4` wrote, trained {record['finetune_steps']} more steps on "
        f"{record['finetune_length'] * 3 // 4}-{record['finetune_length']}-token sequences of the same mix "
        f"({ft}), then smoked `--as-is`.",
        "",
        f"One smoke run per row at `--ctx {max(record['lengths'])}`: its passkey check runs at N/4, N/2, N and "
        f"its control at the trained length. Passkey: greedy, first integer, exact match; {record['trials']} "
        "trials x 5 depths per length and variant (the table's n); a length is the prompt plus smoke's answer "
        "room. "
        f"With n = {n} per length, {round(0.8 * n)}/{n} has a 95% Wilson interval of {low:.2f}-{high:.2f}: "
        "differences of a few trials are noise. Bucket losses compare methods at the same bucket (the same text); "
        "down a column the text changes, so part of a bucket-to-bucket difference is the text, not the position. "
        f"Loss: mean token loss (nats) per {record['original']}-token position bucket of a {max(record['lengths'])}"
        f"-token pass over {record['text']}. Whole run: {record['seconds'] / 60:.0f} min on a shared 2-core CPU.",
        "",
        "## Passkey accuracy, classic prompt (filler without digits)",
        "",
        *passkey_table(record, "classic"),
        "",
        "## Passkey accuracy, digits variant (every filler sentence carries a 5-digit number)",
        "",
        *passkey_table(record, "digits"),
        "",
        f"## Loss per position bucket at {max(record['lengths'])} tokens (nats; the trained window is the first)",
        "",
        *loss_table(record),
        "",
        "![passkey accuracy against length](plots/passkey.png)",
        "",
        "![loss against position](plots/loss.png)",
        "",
        "## Against the published pattern (computed from the tables above)",
        "",
        f"An accuracy claim holds (yes) when the difference exceeds {MARGIN:g}, fails (**no**) when it goes the "
        "other way by as much, and is 'within noise' otherwise; 'partly': better, but short of 0.8 x the "
        "unscaled model's in-window accuracy. Loss claims compare two methods at the same bucket, except the "
        "blow-up row (in-window bucket against a later one: different text, see above).",
        "",
        *claims(record),
        "",
        "## Discussion",
        "",
        kept,
        "",
    ]
    path.write_text("\n".join(lines))


def write_plots(record: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    lengths = record["lengths"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, variant in zip(axes, VARIANTS, strict=True):
        for label in record["settings"]:
            style = "--" if "fine-tune" in label else "-"
            ax.plot(lengths, [_acc(record, label, L, variant) for L in lengths], style, marker="o", label=label)
        ax.axvline(record["original"], color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(L) for L in lengths])
        ax.set_title(f"passkey, {variant}")
        ax.set_xlabel("tokens")
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "passkey.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    longest = str(max(lengths))
    for label, run in record["settings"].items():
        curve = run["curve"]
        ax.plot(curve["positions"], curve["scaled"], "--" if "fine-tune" in label else "-", label=label)
    ax.axvspan(0, record["original"], color="grey", alpha=0.15, label="trained window")
    ax.axvline(record["original"] * record["factor"], color="grey", linestyle=":", label="factor x window")
    ax.set_xlabel("position")
    ax.set_ylabel("token loss (nats)")
    ax.set_title(f"loss against position, {longest}-token pass over held-out text")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "loss.png", dpi=110)
    plt.close(fig)
