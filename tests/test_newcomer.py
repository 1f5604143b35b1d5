"""A newcomer's first ten minutes (issue 16): install and demo, linter habits, lengths and names as people type them,
output that fits the terminal and reads the same everywhere, fix's messages and undo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, ROOT, invoke, run_entry
from ropedoctor.entry import parse_fast_check
from ropedoctor.fmt import MAX_LENGTH, number, parse_length, plural
from ropedoctor.terminal import wrap

CONSOLE_SCRIPT = Path(sys.executable).parent / "ropedoctor"
LLAMA2 = str(FIXTURES / "meta-llama-2-7b-hf")
YI = str(FIXTURES / "yi-1.5-34b")
NOMIC = str(FIXTURES / "nomic-embed-text-v1.5")
BROKEN = str(FIXTURES / "broken" / "yarn-legacy-type-conflict")
GGUF = FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf"


def cli(*args: str, cwd: Path = ROOT, columns: int = 1000, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (the fast path included), plain text."""
    full = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", **env}
    return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=120)


def one_error_line(result: Any, *needles: str) -> None:
    assert result.returncode == 2 and result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ropedoctor: error: "), result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


# --- lengths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tokens"), [("32768", 32768), ("8k", 8192), ("32K", 32768), ("128k", 131072),
                                              ("1m", 1 << 20), ("1M", 1 << 20), ("1.5k", 1536), ("4_096", 4096)])
def test_lengths_as_people_write_them(text: str, tokens: int) -> None:
    assert parse_length(text) == tokens


@pytest.mark.parametrize("text", ["0", "-1", "k", "1.2", "many", "100000000000", str(MAX_LENGTH + 1), "8kk", ""])
def test_lengths_that_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_length(text)


@pytest.mark.parametrize("argv", [
    ["check", YI, "--ctx", "16k"], ["fix", YI, "--ctx", "16K", "--dry-run"],
    ["flags", YI, "--ctx", "16k", "--runtime", "vllm"], ["plan", YI, "--ctx", "16k"],
    ["plot", YI, "--ctx", "16k", "--format", "json"], ["compare", YI, YI, "--ctx", "16k"],
], ids=lambda argv: argv[0])
def test_ctx_suffixes_everywhere(argv: list[str]) -> None:
    """`--ctx 16k` is `--ctx 16384` in every command (same output, same exit code)."""
    suffixed = cli(*argv)
    plain = cli(*[("16384" if arg.lower() == "16k" else arg) for arg in argv])
    assert suffixed.returncode == plain.returncode and suffixed.returncode in (0, 1), suffixed.stderr
    assert suffixed.stdout == plain.stdout


def test_absurd_ctx_is_refused_in_one_line() -> None:
    for argv in (["check", YI], ["flags", YI], ["plan", YI]):
        one_error_line(cli(*argv, "--ctx", "100000000000"), "--ctx", "2147483647")


def test_scaling_past_x64_warns_on_stderr() -> None:
    far = cli("flags", LLAMA2, "--ctx", "1m", "--runtime", "vllm")
    assert far.returncode == 0 and far.stderr.startswith(
        f"ropedoctor: warning: {LLAMA2}/config.json: --ctx 1048576 is x256 the trained 4096")
    checked = cli("check", LLAMA2, "--ctx", "1m")
    assert checked.returncode == 1 and checked.stderr.startswith("ropedoctor: warning: ") and "x256" in checked.stderr
    near = cli("flags", LLAMA2, "--ctx", "128k", "--runtime", "vllm")
    assert near.returncode == 0 and near.stderr == ""
    factor = cli("fix", LLAMA2, "--type", "linear", "--factor", "100", "--dry-run")
    assert "config.json: --factor 100 is x100" in factor.stderr


# --- help, names, paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", "check", "fix", "flags", "plan", "plot", "smoke", "compare", "scan", "rules",
                                     "rule"])
def test_dash_h_is_help(command: str) -> None:
    result = cli(*([command] if command else []), "-h")
    assert result.returncode == 0 and "Usage: ropedoctor" in result.stdout and "-h, --help" in result.stdout


@pytest.mark.parametrize(("runtime", "programs"), [
    ("llamacpp", ["llama-server", "llama-embedding"]), ("LLAMA.CPP", ["llama-server", "llama-embedding"]),
    ("llama-server", ["llama-server"]), ("llama_server", ["llama-server"]), ("llama-embedding", ["llama-embedding"]),
    ("VLLM,llama-box", ["llama-box", "vllm"]), ("Llamabox", ["llama-box"]), ("hf", ["python"]),
    ("text-generation-inference", ["text-generation-launcher"]), ("all", None),
])
def test_runtime_names_case_aliases_and_lists(runtime: str, programs: list[str] | None) -> None:
    result = invoke("flags", NOMIC, "--ctx", "8k", "--runtime", runtime, "--format", "json")
    assert result.exit_code == 0, result.output
    shown = [e["command"].split()[0] if e["command"] else "python" for e in json.loads(result.stdout)["runtimes"]]
    if programs is None:
        assert len(shown) >= 8
    else:
        assert shown == programs


def test_an_unknown_runtime_is_one_line_naming_the_known_ones() -> None:
    one_error_line(cli("flags", NOMIC, "--ctx", "8k", "--runtime", "llama.cp"), "unknown llama.cp", "llama.cpp",
                   "llamacpp")


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub() -> None:
    result = cli("check", "fixtures/yi-1.5-34", env_offline="1")
    one_error_line(result, "fixtures/yi-1.5-34: no such local path", "did you mean fixtures/yi-1.5-34b?")
    assert "huggingface" not in result.stderr
    one_error_line(cli("fix", "fixtures/internlm2-chat-7b", "--ctx", "8k"), "no such local path",
                   "fixtures/internlm2.5-7b-chat")


def test_a_hub_id_that_cannot_be_reached_says_the_local_lookup_came_first(tmp_path: Path) -> None:
    result = cli("check", "nosuchorg/nosuchmodel", cwd=tmp_path, HF_HUB_OFFLINE="1",
                 HF_HOME=str(tmp_path / "hf"))
    assert result.returncode == 2 and result.stderr.startswith(
        "ropedoctor: error: nosuchorg/nosuchmodel: no such local path; as a Hub repo id: "), result.stderr


def test_files_that_are_neither_config_nor_gguf_are_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("{}")
    (tmp_path / "blob").write_bytes(GGUF.read_bytes())  # a GGUF without the suffix (Ollama's store)
    result = cli("check", str(tmp_path / "notes.txt"), str(tmp_path / "blob"), "README.md")
    assert result.returncode == 2
    errors = result.stderr.splitlines()
    assert [line.split(": ")[3] for line in errors] == ["not a config.json or .gguf file"] * 2, errors
    assert "blob (qwen2)" in result.stdout


# --- rule selection ------------------------------------------------------------------------------------


def findings(*args: str, cwd: Path = ROOT) -> list[str]:
    result = cli("check", *args, "--format", "json", cwd=cwd)
    assert result.returncode in (0, 1), result.stderr
    return [f["code"] for r in json.loads(result.stdout)["results"] for f in r["findings"]]


def test_rd209_is_off_by_default_and_can_be_selected() -> None:
    assert findings(LLAMA2) == []
    assert findings(LLAMA2, "--extend-select", "RD209") == ["RD209"]
    assert findings(LLAMA2, "--select", "base-below-bound") == ["RD209"]
    assert "RD209" in findings(LLAMA2, "--select", "ALL")
    assert findings(BROKEN, "--select", "RD2") == ["RD201", "RD207", "RD212"]
    assert findings(BROKEN, "--select", "RD2", "--ignore", "RD207,static-yarn-short-inputs") == ["RD201"]
    assert findings(BROKEN, "--extend-ignore", "RD201", "--extend-ignore", "RD212") == ["RD207"]
    rules = json.loads(invoke("rules", "--format", "json").stdout)
    assert [r["code"] for r in rules if not r["default"]] == ["RD209"]
    assert "not selected by default" in invoke("rule", "RD209").stdout


def test_an_unknown_selector_is_an_input_error() -> None:
    one_error_line(cli("check", LLAMA2, "--select", "RD9"), "unknown rule selector 'RD9'")


def model_copy(tmp_path: Path, fixture: str = "broken/yarn-legacy-type-conflict") -> Path:
    folder = tmp_path / "project" / "models" / "m"
    shutil.copytree(FIXTURES / fixture, folder)
    return folder


def test_pyproject_table_is_found_from_the_input_path(tmp_path: Path) -> None:
    model = model_copy(tmp_path)
    (tmp_path / "project" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ropedoctor]\nignore = ["RD207"]\nextend-select = ["RD209"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert findings(str(model), cwd=elsewhere) == ["RD201", "RD212"]
    assert findings(str(model), "--isolated", cwd=elsewhere) == ["RD201", "RD207", "RD212"]
    assert findings(str(model), "--extend-select", "RD207", cwd=elsewhere) == ["RD201", "RD207", "RD212"]
    # the fast path (plain `check`) and typer read the same file
    argv = ["check", str(model), "--format", "json"]
    assert parse_fast_check(argv) is not None
    os.chdir(elsewhere)
    try:
        typer_result = invoke(*argv)
        assert run_entry(argv) == (typer_result.exit_code, typer_result.stdout, typer_result.stderr)
    finally:
        os.chdir(ROOT)


def test_ropedoctor_toml_wins_over_a_pyproject_above_it(tmp_path: Path) -> None:
    model = model_copy(tmp_path)
    (tmp_path / "project" / "pyproject.toml").write_text('[tool.ropedoctor]\nselect = ["RD207"]\n')
    (tmp_path / "project" / "models" / "ropedoctor.toml").write_text('select = ["RD201"]\n')
    assert findings(str(model), cwd=tmp_path) == ["RD201"]
    (tmp_path / "project" / "models" / "ropedoctor.toml").write_text('[tool.ropedoctor]\nselect = ["RD212"]\n')
    assert findings(str(model), cwd=tmp_path) == ["RD212"]


def test_a_pyproject_without_our_table_is_not_a_config(tmp_path: Path) -> None:
    model = model_copy(tmp_path)
    (tmp_path / "project" / "pyproject.toml").write_text('[tool.ruff]\nline-length = 120  # not [tool.ropedoctor]\n')
    assert findings(str(model), cwd=tmp_path) == ["RD201", "RD207", "RD212"]


@pytest.mark.parametrize(("content", "needle"), [
    ('[tool.ropedoctor]\nselct = ["RD1"]\n', "unknown key 'selct'"),
    ('[tool.ropedoctor]\nselect = "RD1"\n', "select must be a list"),
    ('[tool.ropedoctor]\nselect = ["RD9"]\n', "unknown rule selector 'RD9'"),
    ('[tool.ropedoctor\n', "invalid TOML"),
])
def test_a_bad_config_file_is_one_line_naming_it(tmp_path: Path, content: str, needle: str) -> None:
    model = model_copy(tmp_path)
    (tmp_path / "project" / "ropedoctor.toml").write_text(content)
    one_error_line(cli("check", str(model)), "ropedoctor.toml", needle)


# --- quiet, strict ---------------------------------------------------------------------------------------


def test_quiet_strict_shows_the_warnings_that_decide_the_exit_code() -> None:
    snippet = str(FIXTURES / "broken" / "qwen2.5-yarn-snippet")
    quiet = cli("check", snippet, "-q")
    assert (quiet.returncode, quiet.stdout) == (0, "")
    strict = cli("check", snippet, "-q", "--strict")
    assert strict.returncode == 1 and "warning RD207" in strict.stdout and "RD212" not in strict.stdout
    github = cli("check", snippet, "-q", "--strict", "--format", "github")
    assert github.returncode == 1 and github.stdout.startswith("::warning ")


# --- output: width, words, numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["check", BROKEN, YI, "--ctx", "16k"], ["plan", YI, "--ctx", "16k"], ["rules"],
    ["flags", NOMIC, "--ctx", "8k", "--runtime", "llama.cpp"], ["fix", YI, "--ctx", "16k", "--dry-run"],
    ["scan", str(FIXTURES / "gguf")], ["compare", str(FIXTURES / "qwen2.5-7b-instruct"), str(GGUF)],
], ids=lambda argv: argv[0])
def test_output_fits_the_terminal(argv: list[str]) -> None:
    for columns in (80, 100):
        result = cli(*argv, columns=columns)
        assert result.returncode in (0, 1), result.stderr
        too_long = [line for line in result.stdout.splitlines()
                    if len(line) > columns and not line.startswith(("+", "-", " ")) and " " in line.strip()]
        wide = [line for line in result.stdout.splitlines() if len(line) > columns and not _one_unbreakable(line)]
        assert not too_long and not wide, wide or too_long


def _one_unbreakable(line: str) -> bool:
    """A diff line (kept whole) or one token longer than the width (a JSON override)."""
    body = line.strip()
    return line.startswith(("+", "-", " ")) and (line[:1] in "+-" or body.startswith("'") or " " not in body[40:])


def test_wrapped_commands_still_paste_as_one() -> None:
    wide = cli("flags", NOMIC, "--ctx", "8k", "--runtime", "llama-server", columns=1000).stdout.splitlines()[1].strip()
    narrow = cli("flags", NOMIC, "--ctx", "8k", "--runtime", "llama-server", columns=60).stdout.splitlines()
    pieces = []
    for line in narrow[1:]:
        pieces.append(line.strip().removesuffix("\\").strip())
        if not line.endswith("\\"):
            break
    assert " ".join(pieces) == wide and len(pieces) > 1
    assert all(piece.startswith("-") for piece in pieces[1:])  # broken before an option, never inside one


def test_wrap_keeps_styles_and_hangs_findings() -> None:
    line = [("  ", ""), ("error  ", "bold red"), (" RD201 name: " + "word " * 30, ""), ("(loc)", "dim")]
    pieces = wrap(line, 50)
    assert all(len("".join(t for t, _ in p)) <= 50 for p in pieces)
    assert all("".join(t for t, _ in p).startswith(" " * 10) for p in pieces[1:])
    assert pieces[-1][-1] == ("(loc)", "dim") and pieces[0][1] == ("error  ", "bold red")
    assert wrap([("x" * 200, "nowrap")], 50) == [[("x" * 200, "nowrap")]]


def test_plan_uses_words_columns_and_a_runtime_filter() -> None:
    text = cli("plan", YI, "--ctx", "16k", "--runtime", "LlamaCpp,vllm,tgi").stdout
    table = text.split("what each runtime needs\n", 1)[1].splitlines()
    assert table[0].split() == ["runtime", "plan", "linear", "dynamic", "yarn", "ntk"]
    rows = {line.split()[0]: line for line in table[1:4]}
    assert set(rows) == {"llama.cpp", "vllm", "tgi"}, rows
    assert "approx" in rows["llama.cpp"] and "file only" in rows["tgi"]
    marks = [cell for line in table[:4] for cell in line.split()[1:]]
    assert set(marks) - {"plan", "linear", "dynamic", "yarn", "ntk"} <= {"flags", "file", "only", "approx", "as", "is"}
    assert "slot(s)" not in text
    columns = {line.index("flags") for line in table[1:3] if "flags" in line}
    assert len(columns) == 1  # fixed columns
    doc = json.loads(cli("plan", YI, "--ctx", "16k", "--runtime", "vllm", "--format", "json").stdout)
    assert {r["runtime"] for o in doc["options"] if o["available"] for r in o["runtimes"]} == {"vllm"}


def test_plan_on_a_file_that_needs_nothing_says_so() -> None:
    text = cli("plan", str(FIXTURES / "qwen2.5-7b-instruct"), "--ctx", "8k").stdout
    assert "nothing to change: the file already serves 32768 tokens, 8192 asked" in text
    assert "ways to serve" not in text and "x0.25" not in text and "memory (f16 KV cache, 1 slot of 8192" in text


@pytest.mark.parametrize(("value", "shown"), [
    (1e6, "1000000"), (5e6, "5000000"), (20444971.216243107, "20444971"), (4088994.7, "4088995"),
    (7453.483, "7453.48"), (1.13863, "1.13863"), (0.857142857, "0.857143"), (4.0, "4"), (2.5, "2.5"), (32768, "32768"),
    (True, "true"), (False, "false"), (None, "-"),
])
def test_one_number_format(value: float | bool | None, shown: str) -> None:
    assert number(value) == shown


def test_plural_grammar() -> None:
    assert (plural(1, "model"), plural(2, "model"), plural(0, "slot")) == ("1 model", "2 models", "0 slots")
    one = cli("scan", str(FIXTURES / "broken" / "odd-head-dim")).stdout.splitlines()[-1]
    assert one.startswith("1 model, 0 unreadable")


def test_numbers_read_the_same_everywhere() -> None:
    """The base of a static NTK plan: the same digits in check's RD301, plan, fix's reasons and flags."""
    base = "20444971"
    assert f"rope_theta {base}" in cli("check", YI, "--ctx", "16k").stdout
    assert f" {base} " in cli("plan", YI, "--ctx", "16k").stdout
    assert f"= {base}," in cli("fix", YI, "--ctx", "16k", "--type", "ntk", "--dry-run").stdout
    assert f"--rope-freq-base {base}" in cli("flags", YI, "--ctx", "16k", "--type", "ntk", "--runtime",
                                             "llama.cpp").stdout
    summary = cli("check", str(FIXTURES / "qwen2.5-7b-instruct")).stdout
    assert "theta 1000000" in summary and "e+0" not in summary
    compare = cli("compare", str(FIXTURES / "qwen2.5-7b-instruct"), str(GGUF)).stdout
    assert "true -> true" in compare and "True" not in compare


def test_summary_says_what_the_file_serves_next_to_what_it_declares(tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(LLAMA2, model)
    assert cli("fix", str(model), "--type", "linear", "--factor", "4").returncode == 0
    assert "method linear x4 · theta 10000 · original 4096 · context 4096 (serves 16384)" in cli(
        "check", str(model)).stdout
    internlm = cli("check", str(FIXTURES / "internlm2.5-7b-chat"), "--ctx", "64k").stdout
    assert "context 32768 (serves 65536)" in internlm and "RD301" not in internlm


def test_json_contract_is_unchanged() -> None:
    doc = json.loads(cli("check", YI, "--format", "json").stdout)
    rope = doc["results"][0]["rope"]
    assert list(rope)[:7] == ["method", "theta", "factor", "original_context", "context", "head_dim", "rotary_dim"]
    assert rope["theta"] == 5000000.0 and isinstance(rope["theta"], float) and doc["summary"] == {
        "error": 0, "warning": 0, "info": 0}


def test_rule_summary_is_not_cut_at_an_abbreviation() -> None:
    line = next(line for line in cli("rules").stdout.splitlines() if line.startswith("RD209"))
    assert "Men et al. 2024 derive for the length it is used at" in line
    assert "Men et al. 2024 derive" in (ROOT / "docs" / "rules.md").read_text()


# --- fix: out, nothing written, undo --------------------------------------------------------------------


def test_fix_out_dir_writes_dir_config_json(tmp_path: Path) -> None:
    for out, written in ((tmp_path / "new" / "deeper", tmp_path / "new" / "deeper" / "config.json"),
                         (tmp_path / "existing", tmp_path / "existing" / "config.json"),
                         (tmp_path / "named.json", tmp_path / "named.json")):
        if out.name == "existing":
            out.mkdir()
        result = cli("fix", YI, "--ctx", "16k", "--out", str(out), "--format", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["written"] == str(written) and written.is_file()
    gguf = cli("fix", str(GGUF), "--ctx", "128k", "--out", str(tmp_path / "g"), "--format", "json")
    assert json.loads(gguf.stdout)["written"] == str(tmp_path / "g" / GGUF.name)


def test_fix_that_changes_nothing_says_nothing_written(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "gguf" / "qwen2.5-7b-no-freq-base.gguf", tmp_path / "m.gguf")
    done = cli("fix", str(tmp_path / "m.gguf"), "--ctx", "8k")
    assert done.returncode == 0 and "nothing written" in done.stdout and "write mode" not in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]
    dry = cli("fix", YI, "--ctx", "16k", "--dry-run")
    assert dry.stdout.splitlines()[-1] == "dry run: nothing written"


@pytest.mark.parametrize("kind", ["config", "gguf"])
def test_fix_prints_how_to_undo_and_restore_puts_it_back(tmp_path: Path, kind: str) -> None:
    if kind == "config":
        target = tmp_path / "m" / "config.json"
        shutil.copytree(YI, target.parent)
        args = ["--ctx", "16k"]
    else:
        target = tmp_path / "m.gguf"
        shutil.copy(GGUF, target)
        args = ["--ctx", "128k"]
    before = target.read_bytes()
    done = cli("fix", str(target), *args)
    assert done.returncode == 0 and target.read_bytes() != before
    undo = done.stdout.splitlines()[-1]
    assert undo == f"undo: ropedoctor fix --restore {target}"
    restored = cli(*undo.removeprefix("undo: ropedoctor ").split())
    assert restored.returncode == 0 and restored.stdout.startswith(f"restored {target} from ")
    assert target.read_bytes() == before and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    one_error_line(cli("fix", str(target), "--restore"), "no backup to restore")
    one_error_line(cli("fix", str(target), "--restore", "--ctx", "8k"), "--restore takes only PATH")


# --- optional dependencies --------------------------------------------------------------------------------

WITHOUT_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # the import fails as it does where the extra is not installed
sys.argv = ["ropedoctor", *sys.argv[1:]]
from ropedoctor.entry import main
main()
"""


def test_plot_json_needs_no_matplotlib_and_png_names_the_extra(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", WITHOUT_MATPLOTLIB, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    numbers = run("plot", LLAMA2, "--ctx", "16k", "--format", "json")
    assert numbers.returncode == 0 and json.loads(numbers.stdout)["out"] is None and numbers.stderr == ""
    picture = run("plot", LLAMA2, "--ctx", "16k", "--out", str(tmp_path / "x.png"))
    one_error_line(picture, "`ropedoctor plot` needs matplotlib", "pip install 'ropedoctor[plot]'")
    assert not (tmp_path / "x.png").exists()
    one_error_line(run("plot", LLAMA2), "--out FILE.png is needed")


def test_every_optional_module_names_an_extra_that_exists() -> None:
    import re

    from ropedoctor.entry import OPTIONAL_MODULES

    table = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([a-z]+) = \[", table, re.MULTILINE))
    assert 'plot = ["matplotlib>=3.8"]' in table
    assert set(OPTIONAL_MODULES.values()) <= extras


# --- make demo ------------------------------------------------------------------------------------------


def test_demo_tours_the_three_tasks_and_ends_with_the_next_command() -> None:
    result = subprocess.run(["sh", str(ROOT / "tools" / "demo.sh"), str(CONSOLE_SCRIPT)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for needle in ("== 1. nomic-embed-text-v1.5", "== 2. InternLM2", "== 3. Yi-1.5-34B", "-> exit 1: an error finding",
                   "-> exit 0: nothing at error level", "source .venv/bin/activate", ".venv/bin/ropedoctor check",
                   "pipx install .", "uv tool install .", "pip install ."):
        assert needle in out, needle
    assert "Error" not in out + result.stderr and "expected exit" not in out
    assert not list((FIXTURES / "broken" / "internlm2-scaling-null").glob("*.bak"))
