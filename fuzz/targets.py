"""The parsers under fuzzing, each as a Target: the config.json loader (with fix's planner and editor), the
GGUF header reader (with the GGUF rules), and hub paths (repo ids and file names)."""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from fuzz.engine import ROOT, Failure, template
from fuzz.mutate import HUGE_U64, JSON_TOKENS, dumps, mutate_bytes, mutate_json, random_json

CTX_CHOICES: list[int | None] = [None, 1, 4096, 131072, 2**31]
STYLES: list[Literal["keep", "v4", "v5", "both"]] = ["keep", "v4", "v5", "both"]


def clean(error: Any) -> str:
    """The outcome of an InputError: it must read as one ``ropedoctor: error:`` line."""
    line = error.line
    if "\n" in line or "\r" in line or not line.startswith("ropedoctor: error: "):
        raise Failure(f"error message is not one line: {line!r}")
    return "clean:" + template(error.why)


def _scratch() -> Path:
    folder = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    scratch = Path(tempfile.mkdtemp(prefix="ropedoctor-fuzz-", dir=folder))
    atexit.register(shutil.rmtree, scratch, True)
    return scratch


class ConfigTarget:
    """bytes -> config.json on disk -> check (report in JSON and text) and fix --dry-run."""

    name = "config"
    suffix = ".json"
    seconds = 2.0
    memory_mb = 512

    def __init__(self) -> None:
        self.seeds: list[bytes] = []
        self.folder: Path | None = None

    def setup(self) -> None:
        self.seeds = [p.read_bytes() for p in sorted((ROOT / "fixtures").rglob("config.json"))]
        self.folder = _scratch()

    def generate(self, rng: random.Random) -> bytes:
        if not self.seeds:
            self.setup()
        seed = rng.choice(self.seeds)
        kind = rng.random()
        if kind < 0.45:
            return mutate_bytes(rng, seed, JSON_TOKENS)
        if kind < 0.9:
            value = json.loads(seed)
            for _ in range(rng.randint(1, 4)):
                value = mutate_json(rng, value)
            return dumps(rng, value)
        if kind < 0.95:  # deep nesting
            depth = rng.choice([10, 100, 1000, 5000, 100_000])
            opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'{"rope_scaling":', b"}")])
            return opener * depth + b"1" + closer * (depth if rng.random() < 0.8 else depth // 2)
        if kind < 0.99:  # wide
            return dumps(rng, {f"k{i}": random_json(rng) for i in range(rng.choice([100, 10_000]))})
        return rng.choice([b"", b" ", b"\xef\xbb\xbf{}", b"[]", b'"x"', b"1", b"{}" * 3, bytes(range(256))])

    def run(self, data: bytes) -> str:
        from ropedoctor import report
        from ropedoctor.check import CheckResult
        from ropedoctor.errors import InputError
        from ropedoctor.fix import FixError, fix_path
        from ropedoctor.fix_options import FixOptions
        from ropedoctor.plan import Target as PlanTarget
        from ropedoctor.rules import Target, run_rules
        from ropedoctor.sources.hf_config import read_hf_config

        assert self.folder is not None
        path = self.folder / "config.json"
        path.write_bytes(data)
        ctx = CTX_CHOICES[len(data) % len(CTX_CHOICES)]
        try:
            spec = read_hf_config(path)
        except InputError as error:
            return clean(error)
        result = CheckResult(spec, run_rules(spec, Target(ctx=ctx)))
        json.dumps(report.check_json([result]))
        report.check_lines([result])
        style = STYLES[len(data) % 4]
        options = FixOptions(target=PlanTarget(ctx=ctx or 131072), style=style, mode="dry-run", output="json")
        try:
            outcome = fix_path(str(path), options)
            json.dumps(outcome.report)
        except InputError as error:
            return clean(error)
        except FixError:
            return "result"
        if path.read_bytes() != data:
            raise Failure("fix --dry-run changed the file")
        return "result"


class GgufTarget:
    """bytes -> GGUF header (from the file with read_gguf, and as a stream of unknown size) -> RopeSpec -> rules."""

    name = "gguf"
    suffix = ".gguf"
    seconds = 2.0
    memory_mb = 512

    def __init__(self) -> None:
        self.seeds: list[bytes] = []
        self.folder: Path | None = None

    def setup(self) -> None:
        files = sorted((ROOT / "tests" / "gguf_corpus").glob("valid-*.gguf")) + sorted(
            (ROOT / "fixtures" / "gguf").glob("*.gguf"))
        self.seeds = [p.read_bytes() for p in files]
        self.folder = _scratch()

    def generate(self, rng: random.Random) -> bytes:
        if not self.seeds:
            self.setup()
        seed = rng.choice(self.seeds)
        if rng.random() < 0.1 and len(self.seeds) > 1:  # splice two files
            other = rng.choice(self.seeds)
            cut = rng.randint(0, len(seed))
            seed = seed[:cut] + other[rng.randint(0, len(other)):]
        tokens = [b"GGUF", b"\x03\x00\x00\x00", b"\x00\x00\x00\x03", *(v.to_bytes(8, "little") for v in HUGE_U64)]
        return mutate_bytes(rng, seed, tokens, rounds=rng.choice([1, 2, 3, 6]))

    def run(self, data: bytes) -> str:
        import io

        from ropedoctor.errors import InputError
        from ropedoctor.rules import Target, run_rules
        from ropedoctor.sources.gguf_header import read_gguf, read_header
        from ropedoctor.sources.gguf_source import spec_from_header

        assert self.folder is not None
        path = self.folder / "model.gguf"
        path.write_bytes(data)
        outcomes = []
        for read in ("file", "stream"):
            try:
                if read == "file":
                    header = read_gguf(path)
                else:
                    header = read_header(io.BytesIO(data), str(path), materialise=lambda key, item, length: True)
                if header.header_size > len(data):
                    raise Failure(f"header of {header.header_size} bytes read from {len(data)} bytes")
                spec = spec_from_header(header)
                run_rules(spec, Target(ctx=CTX_CHOICES[len(data) % len(CTX_CHOICES)]))
                outcomes.append("result")
            except InputError as error:
                outcomes.append(clean(error))
        return outcomes[0]


class HubPathTarget:
    """A PATH argument -> parse_hub_path: a repo path is valid, or None; never a way out of the HF cache."""

    name = "hub-paths"
    suffix = ".txt"
    seconds = 2.0
    memory_mb = 256
    PIECES: ClassVar[list[str]] = ["org", "name", "x.gguf", "config.json", "..", ".", "/", "//", "\\", ":", "%2e%2e", "%2F", "\x00",
                                   "~", "é", "-", "_", "a" * 100, "\n", " ", "C:", "@", "?", "#", "models--",
                                   "snapshots", "etc/passwd", ".gguf", "GGUF", "refs/pr/1", "\u202e", "\udcff"]

    def setup(self) -> None:
        pass

    def generate(self, rng: random.Random) -> bytes:
        text = "".join(rng.choice(self.PIECES) for _ in range(rng.randint(1, 9)))
        return text.encode("utf-8", "surrogatepass")

    def run(self, data: bytes) -> str:
        from ropedoctor.errors import InputError
        from ropedoctor.sources.hub import parse_hub_path

        path = data.decode("utf-8", "surrogatepass")
        revision = None if len(data) % 3 else path[-8:]
        try:
            ref = parse_hub_path(path, revision)
        except InputError as error:
            return clean(error)
        if ref is None:
            return "clean:not a repo path"
        cache = Path("/cache/hub")
        repo_folder = cache / ("models--" + ref.repo_id.replace("/", "--"))
        for part in (ref.repo_id, ref.file, ref.revision or "main"):
            if part.startswith(("/", "\\")) or ".." in part.split("/") or "\x00" in part:
                raise Failure(f"{path!r} gives a path that leaves the cache: {part!r}")
        blob = os.path.normpath(repo_folder / "snapshots" / (ref.revision or "main") / ref.file)
        if not blob.startswith(str(repo_folder) + "/"):
            raise Failure(f"{path!r} resolves outside its cache folder: {blob}")
        return "result"


def make_target(name: str) -> Any:
    if name == "hub":
        from fuzz.hub_target import HubTarget

        return HubTarget()
    if name in ISSUE15_TARGETS:
        from fuzz import issue15_targets

        return {"hub-names": issue15_targets.HubNamesTarget, "gguf-shrink": issue15_targets.GgufShrinkTarget,
                "gguf-alloc": issue15_targets.GgufAllocTarget}[name]()
    return {"config": ConfigTarget, "gguf": GgufTarget, "hub-paths": HubPathTarget}[name]()


# hub responses that name paths, files that shrink while read, headers that ask for huge allocations (issue 15)
ISSUE15_TARGETS = ("hub-names", "gguf-shrink", "gguf-alloc")
TARGETS = ("config", "gguf", "hub", "hub-paths", *ISSUE15_TARGETS)
