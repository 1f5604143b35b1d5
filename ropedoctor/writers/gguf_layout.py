"""A planned RopeSpec back into GGUF metadata keys, with the types llama.cpp requires.

Also repairs what the RD4xx rules report as unloadable: keys stored with the wrong type are
rewritten with the required one, and a scaling type llama.cpp refuses is replaced.
"""

from __future__ import annotations

from typing import Any

from ropedoctor import gguf_keys as G
from ropedoctor.errors import InputError
from ropedoctor.model import methods
from ropedoctor.plan import Plan
from ropedoctor.writers.gguf import KVChange

# method -> the rope.scaling.type that carries it (the method table's GGUF carrier, model/methods.py)
_GGUF_METHODS = {m.name: m.gguf for m in methods.METHODS.values() if m.gguf in ("none", "linear", "yarn")}


def gguf_changes(plan: Plan) -> list[KVChange]:
    """KV edits for the plan; InputError for what GGUF cannot carry (dynamic NTK, a new llama3/longrope)."""
    before, after = plan.before, plan.after
    layout = before.gguf
    if layout is None:
        raise InputError(before.source, "not a GGUF file")
    if after.method not in _GGUF_METHODS and after.method != before.method:
        raise InputError(before.source, f"GGUF cannot carry {after.method} scaling (llama.cpp runs none, linear, "
                                        f"yarn, and llama3/longrope only as converter-made tensors); use --type yarn "
                                        f"or --type ntk")
    if after.method in ("llama3", "longrope") and after.factor != before.factor:
        raise InputError(before.source, f"{after.method} lives in the GGUF's rope tensors, which ropedoctor does not "
                                        f"rewrite; use --type yarn, or re-convert with the new factor")
    wanted: dict[str, tuple[G.ValueType, Any]] = {}
    if after.context is not None and after.context != before.context:
        wanted[G.CONTEXT_LENGTH] = (G.ValueType.UINT32, after.context)
    if after.theta is not None and after.theta != before.theta:  # an absent key already means 10000
        wanted[G.ROPE_FREQ_BASE] = (G.ValueType.FLOAT32, after.theta)
    refused = layout.values.get(G.ROPE_SCALING_TYPE, "none") not in G.SCALING_TYPES  # RD402
    if (after.method != before.method or refused) and after.method in _GGUF_METHODS:
        wanted[G.ROPE_SCALING_TYPE] = (G.ValueType.STRING, _GGUF_METHODS[after.method])
    if after.method in ("linear", "yarn") and after.factor is not None:
        wanted[G.ROPE_SCALING_FACTOR] = (G.ValueType.FLOAT32, float(after.factor))
    elif after.method == "default" and G.ROPE_SCALING_FACTOR in layout.values:
        wanted[G.ROPE_SCALING_FACTOR] = (G.ValueType.FLOAT32, 1.0)
    if after.method == "yarn" and after.original_context:
        wanted[G.ROPE_SCALING_ORIG_CTX_LEN] = (G.ValueType.UINT32, after.original_context)
    elif after.method == "linear" and after.original_context and G.CONTEXT_LENGTH in wanted:
        # llama.cpp ignores it for linear; it records the trained length, which the reader otherwise infers as
        # context_length / factor (gguf_source), and keeps a second fix a no-op where that inference cannot hold
        # (a trained length below MIN_PLAUSIBLE_TRAINED_LENGTH reads as context_length).
        wanted[G.ROPE_SCALING_ORIG_CTX_LEN] = (G.ValueType.UINT32, after.original_context)
    for template, stored in layout.types.items():  # RD401: same value, the type llama.cpp loads
        required = G.REQUIRED_TYPES.get(template)
        if required and stored not in required and template not in wanted and required[0] != G.ValueType.ARRAY:
            wanted[template] = (required[0], _converted(layout.values[template], required[0]))
    changes = []
    for template, (vtype, value) in wanted.items():
        current = layout.values.get(template)
        if template in layout.values and layout.types.get(template) == vtype and _same(current, value, vtype):
            continue
        changes.append(KVChange(layout.key(template), int(vtype), value))
    return changes


def _converted(value: Any, vtype: G.ValueType) -> Any:
    if vtype in (G.ValueType.FLOAT32, G.ValueType.FLOAT64):
        return float(value)
    if vtype == G.ValueType.BOOL:
        return bool(value)
    if vtype == G.ValueType.STRING:
        return str(value)
    return int(value)


def _same(current: Any, value: Any, vtype: G.ValueType) -> bool:
    if vtype == G.ValueType.FLOAT32 and isinstance(current, float) and isinstance(value, float):
        return abs(current - value) <= 1e-7 * max(abs(current), abs(value))  # float32 round trip
    return bool(current == value)
