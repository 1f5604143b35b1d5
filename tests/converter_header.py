"""Header-only conversions with llama.cpp's own converter (tests/test_converter_truth.py runs it in a subprocess):
for each config folder, the real model class's set_gguf_parameters and generate_extra_tensors (rope_freqs), with
no weights and no vocabulary.

    python converter_header.py LLAMA_CPP_DIR OUT_DIR FOLDER...   -> OUT_DIR/<folder name>.gguf, one JSON line each

The model class is picked and built as convert_hf_to_gguf.py's main() does (load_hparams, which goes through the
installed transformers' AutoConfig, then get_model_architecture and get_model_class); only index_tensors is
replaced, as there are no weights to index, and a wrapper class's inner model (``impl``) is the one written.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    llama, out_dir = Path(argv[1]), Path(argv[2])
    sys.path[:0] = [str(llama / "gguf-py"), str(llama)]
    gguf: Any = importlib.import_module("gguf")
    numpy: Any = importlib.import_module("numpy")
    convert: Any = importlib.import_module("convert_hf_to_gguf")
    conversion: Any = importlib.import_module("conversion")
    model_type: Any = importlib.import_module("conversion.base").ModelType
    logging.disable(logging.WARNING)
    conversion.ModelBase.index_tensors = lambda self, remote_hf_model_id=None: {}  # no weights to index
    for arg in argv[3:]:
        folder = Path(arg)
        out = out_dir / f"{folder.name}.gguf"
        try:
            hparams = conversion.ModelBase.load_hparams(folder, False)
            cls = conversion.get_model_class(convert.get_model_architecture(hparams, model_type.TEXT), mmproj=False)
            model = cls(folder, gguf.LlamaFileType.MOSTLY_F16, out, hparams=hparams)
            model.set_gguf_parameters()
            model = getattr(model, "impl", model)  # wrappers (Mistral3Model) delegate to an inner model and writer
            writer = model.gguf_writer
            for name, tensor in model.generate_extra_tensors():
                writer.add_tensor(name, tensor.float().numpy())
            writer.add_tensor("token_embd.weight", numpy.zeros(16, dtype=numpy.float32))
            writer.write_header_to_file(path=out)
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            print(json.dumps({"folder": str(folder), "gguf": str(out)}), flush=True)
        except Exception as error:  # the converter's own refusal is a result the test checks
            print(json.dumps({"folder": str(folder), "error": f"{type(error).__name__}: {error}"[:300]}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
