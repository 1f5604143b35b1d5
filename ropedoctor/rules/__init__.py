"""All rules, registered on import. One module per family of codes."""

from ropedoctor.rules import (  # noqa: F401  (registers)
    classes,
    compare,
    context,
    dual_chunk,
    gguf,
    portability,
    positions,
    remote_code,
    schema,
)
from ropedoctor.rules.registry import RULES, Finding, Rule, Target, run_rules

__all__ = ["RULES", "Finding", "Rule", "Target", "run_rules"]
