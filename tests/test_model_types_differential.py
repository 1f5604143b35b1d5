"""Every model type transformers knows: ropedoctor's reading of a config.json against what transformers builds.

For each of the 822 types of the pinned transformers (``CONFIG_MAPPING``): the class's default config as
``save_pretrained`` writes it, and for types with RoPE five scaled variants (YaRN x4 in the v5 layout without
the original length, YaRN x4 in the legacy v4 layout with ``type``, linear x2 v4, dynamic x2 v5, and transformers'
own ``test_model_rope_scaling_from_config`` block, linear x10 v5), injected into
the text config wherever the type keeps it. transformers' side is ``hf_probe.build``: ``AutoConfig``'s path,
then the text model's own rotary module. Compared:

* transformers raises (config class or rotary module) -> at least one error finding;
* it loads and builds -> no RD1xx error, and the ``rope`` block agrees: method, theta, factor, original length,
  context (text ``max_position_embeddings``), head_dim (where the config holds one) and rotary dim (twice the
  non-zero ``inv_freq`` entries of the module, the main layer type's for per-layer modules);
* types without ``rope_parameters`` -> ``method: none``;
* never exit 2 (``InputError``) on a file transformers loads.

``ALLOWED`` lists the (type, variant, field) disagreements where transformers itself is inconsistent, each
with its reason. Run as a script to print the counts for the issue note.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from hf_probe import Built, build, follow_dict, model_types, saved_default
from ropedoctor.errors import InputError
from ropedoctor.rules import Target, run_rules
from ropedoctor.sources.hf_config import spec_from_config

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # name -> (layout, block without the theta)
    "yarn_v5": ("v5", {"rope_type": "yarn", "factor": 4.0}),
    "yarn_v4": ("v4", {"type": "yarn", "factor": 4.0}),
    "linear_v4": ("v4", {"type": "linear", "factor": 2.0}),
    "dynamic_v5": ("v5", {"rope_type": "dynamic", "factor": 2.0}),
    # transformers' own test_model_rope_scaling_from_config dict (causal_lm_tester.py), in the v5 layout
    "linear10_v5": ("v5", {"rope_type": "linear", "factor": 10.0}),
}
FACTOR_METHODS = frozenset({"linear", "dynamic", "yarn", "llama3", "longrope"})
ORIGINAL_METHODS = frozenset({"yarn", "llama3", "longrope"})

# (model type, variant or "*", field) -> why transformers itself is inconsistent there.
ALLOWED: dict[tuple[str, str, str], str] = {}

# Types whose rotary module the probe cannot build from the config file's own config object, so their
# rotary dim and rotary-stage raises are not compared (everything else is). Not transformers' fault.
NOT_PROBED: dict[str, str] = {
    "blt": "BLT builds its rotary modules from the encoder/decoder/global sub-configs it derives at model init; "
           "the top-level BltConfig has no hidden_size",
    "llama4_vision_model": "Llama4VisionRotaryEmbedding keeps complex `freqs_ci` (from image_size / patch_size), "
                           "no inv_freq; the candidate text module needs max_position_embeddings",
}


# Types whose config class refuses its own defaults, so there is no default config.json to compare: transformers'
# own inconsistency (the generator records them with "default_fails").
NO_DEFAULT: dict[str, str] = {
    "gemma4_assistant": "Gemma4AssistantConfig() fails its own validate_architecture (hidden_size_per_layer_input "
                        "must be 0, got its default 256)",
    "nougat": "NougatConfig() builds a donut_swin encoder sub-config, a type CONFIG_MAPPING does not register",
}


@dataclass(frozen=True)
class Case:
    model_type: str
    variant: str
    config: dict[str, Any]
    path: str


def _main_label(params: dict[str, Any]) -> str | None:
    labels = [k for k, v in params.items() if isinstance(v, dict)]
    if not labels:
        return None
    for preferred in ("full_attention", "main"):  # gpt-oss/Gemma-4 full attention; DeepSeek-V4's main
        if preferred in labels:
            return preferred
    return labels[0]


def _variant(data: dict[str, Any], path: str, name: str) -> dict[str, Any] | None:
    config: dict[str, Any] = json.loads(json.dumps(data))
    text = follow_dict(config, path)
    if text is None or not isinstance(text.get("rope_parameters"), dict) or not text["rope_parameters"]:
        return None  # no RoPE by default (an empty rope_parameters included): nothing to scale
    layout, block = VARIANTS[name]
    params = text["rope_parameters"]
    main = _main_label(params)
    current = params[main] if main else params
    theta = current.get("rope_theta")
    extra = {k: current[k] for k in ("partial_rotary_factor",) if k in current}
    if layout == "v5":
        new = {**extra, **block, "rope_theta": theta}
        if main:
            params[main] = new
        else:
            text["rope_parameters"] = new
    else:
        text.pop("rope_parameters")
        text["rope_theta"] = theta
        text.update(extra)
        scaling = dict(block)
        if scaling.get("type") == "yarn" and isinstance(text.get("max_position_embeddings"), int):
            scaling["original_max_position_embeddings"] = text["max_position_embeddings"]
            text["max_position_embeddings"] *= 4
        text["rope_scaling"] = scaling
    return config


@functools.cache
def cases_of(model_type: str) -> list[Case]:
    data, path = saved_default(model_type)
    if data is None or path is None:
        return []
    cases = [Case(model_type, "saved", data, path)]
    for name in VARIANTS:
        config = _variant(data, path, name)
        if config is not None:
            cases.append(Case(model_type, name, config, path))
    return cases


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _same(a: Any, b: Any) -> bool:
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return x is None and y is None
    return math.isclose(x, y, rel_tol=1e-9)


def _ropedoctor(case: Case) -> tuple[dict[str, Any] | None, list[Any], str | None]:
    from ropedoctor.report import rope_json

    try:
        spec = spec_from_config(json.loads(json.dumps(case.config)), "config.json")
    except InputError as exc:
        return None, [], str(exc)
    return rope_json(spec), run_rules(spec, Target()), None


def disagreements(case: Case, built: Built) -> list[tuple[str, str]]:
    """(field, what differs) for one case; empty when ropedoctor agrees with transformers."""
    if case.model_type in NOT_PROBED and built.stage == "rotary":
        built = Built(raised=None, stage=None, warnings=built.warnings, rope_parameters=built.rope_parameters,
                      context=built.context, head_dim=built.head_dim, rotary=None, text_type=built.text_type)
    rope, findings, exit2 = _ropedoctor(case)
    if exit2 is not None:
        return [("exit2", exit2)] if built.raised is None else []
    assert rope is not None
    errors = [f for f in findings if f.severity == "error"]
    if built.raised is not None:
        return [] if errors else [("raise", f"transformers raised ({built.stage}) {built.raised[:160]}; no error")]
    out = [("false-error", f"{f.code} {f.message}") for f in errors if f.code.startswith("RD1")]
    params = built.rope_parameters
    if not params:
        if rope.get("method") != "none":
            out.append(("method", f"no RoPE in transformers; ropedoctor {rope.get('method')!r}"))
        return out
    main = _main_label(params)
    block = params[main] if main else params
    method = block.get("rope_type")
    if method == "dynamic" and _number(block.get("alpha")):
        method = "ntk_alpha"  # HunYuan's rotary module applies alpha statically (the method table's name for it)
    expected: dict[str, Any] = {"method": method, "theta": block.get("rope_theta"), "context": built.context}
    if method in FACTOR_METHODS and "factor" in block:
        expected["factor"] = block["factor"]
    if method in ORIGINAL_METHODS and "original_max_position_embeddings" in block:
        expected["original_context"] = block["original_max_position_embeddings"]
    if built.head_dim is not None and not main:  # per-layer heads (Gemma-4) have no one global head_dim
        expected["head_dim"] = built.head_dim
    if built.rotary:
        expected["rotary_dim"] = built.rotary.get(main or "", next(iter(built.rotary.values())))
    for name, want in expected.items():
        got = rope.get(name)
        same = got == want if name == "method" else _same(got, want)
        if not same:
            out.append((name, f"ropedoctor {got!r} != transformers {want!r}"))
    return out


def _allowed(model_type: str, variant: str, field: str) -> bool:
    return any(key in ALLOWED for key in ((model_type, variant, field), (model_type, "*", field)))


@functools.cache
def results(model_type: str) -> list[tuple[Case, list[tuple[str, str]]]]:
    return [(case, disagreements(case, build(case.config, model_type, case.path))) for case in cases_of(model_type)]


@pytest.mark.parametrize("model_type", model_types())
def test_model_type_agrees_with_transformers(model_type: str) -> None:
    problems = [
        f"{case.variant}: {field}: {what}"
        for case, found in results(model_type) for field, what in found
        if not _allowed(model_type, case.variant, field)
    ]
    assert not problems, f"{model_type}:\n" + "\n".join(problems)


def test_only_the_documented_types_lack_a_default_config() -> None:
    assert sorted(t for t in model_types() if not cases_of(t)) == sorted(NO_DEFAULT)


def test_allow_list_entries_are_still_needed() -> None:
    stale = [key for key in ALLOWED
             if not any(field == key[2] and key[1] in ("*", case.variant)
                        for case, found in results(key[0]) for field, _ in found)]
    assert not stale, f"allow-list entries that no longer disagree: {stale}"


def main() -> None:
    counts: Counter[str] = Counter()
    by_field: Counter[str] = Counter()
    failing: dict[str, list[str]] = {}
    for model_type in model_types():
        found = results(model_type)
        if not found:
            counts["no default config"] += 1
            continue
        bad = [f"{c.variant}: {f}: {w}" for c, fs in found for f, w in fs if not _allowed(model_type, c.variant, f)]
        allowed = [1 for c, fs in found for f, _ in fs if _allowed(model_type, c.variant, f)]
        counts["agree" if not bad and not allowed else ("allow-listed" if not bad else "disagree")] += 1
        for _, fs in found:
            for f, _ in fs:
                by_field[f] += 1
        if bad:
            failing[model_type] = bad
    for model_type, bad in sorted(failing.items()):
        print(model_type)
        for line in bad:
            print("   ", line[:300])
    print(dict(counts), dict(by_field))


if __name__ == "__main__":
    main()
