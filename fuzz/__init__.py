"""Long fuzzing runs (``make fuzz``): every parser that reads a stranger's bytes, driven by generated and
mutated inputs in a worker process with a time bound per input and a cap on its address space.

``python -m fuzz.run --help``; the bounds and the last figures are in docs/reliability.md.
"""
