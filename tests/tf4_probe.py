"""Run by the transformers 4.57 venv (.venv-tf4): load a config.json folder and report what 4.x makes of it.

Prints one JSON object per folder argument, one per line:
{"folder", "raised", "warnings", "rope_theta", "rope_scaling", "max_position_embeddings"}.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def probe(folder: str) -> None:
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    handler = _Collect()
    logger = hf_logging.get_logger("transformers")
    logger.addHandler(handler)
    out: dict[str, Any] = {"folder": folder, "raised": None}
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)  # no interactive prompt
        text = config.get_text_config()
        out.update(rope_theta=getattr(text, "rope_theta", None), rope_scaling=getattr(text, "rope_scaling", None),
                   max_position_embeddings=getattr(text, "max_position_embeddings", None))
    except Exception as exc:  # the probe reports; the test decides
        out["raised"] = f"{type(exc).__name__}: {exc}"
    logger.removeHandler(handler)
    out["warnings"] = [m for m in handler.messages if "rope" in m.lower() or "factor" in m.lower()]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        probe(argument)
