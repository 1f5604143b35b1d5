"""All rules, registered on import. One module per family of codes."""

from ropedoctor.rules import compare, context, gguf, portability, positions, schema  # noqa: F401  (registers)
from ropedoctor.rules.registry import RULES, Finding, Rule, Target, run_rules

__all__ = ["RULES", "Finding", "Rule", "Target", "run_rules"]
