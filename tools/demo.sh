#!/bin/sh
# `make demo`: a tour of the three classic tasks of README.md on the bundled fixtures, each command's exit code
# explained, then the next command to type. Usage: tools/demo.sh [PATH/TO/ropedoctor] (default .venv/bin/ropedoctor).
# Exit 0 when every command exited as the tour expects (fix writes into a temporary copy, never into fixtures/).
set -u
RD=${1:-.venv/bin/ropedoctor}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ropedoctor-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
export COLUMNS="${COLUMNS:-100}"
failed=0

meaning() {
    case $1 in
        0) echo "nothing at error level" ;;
        1) echo "an error finding: the file cannot do this as it is (the output says how to get there)" ;;
        2) echo "an input could not be used (the line on stderr says why)" ;;
        *) echo "unexpected" ;;
    esac
}

# run EXPECTED_EXIT ARGS...: print the command, run it, say what its exit code means
run() {
    expected=$1
    shift
    printf '\n$ ropedoctor %s\n' "$*"
    "$RD" "$@"
    code=$?
    printf -- '-> exit %s: %s\n' "$code" "$(meaning "$code")"
    [ "$code" = "$expected" ] || { echo "   (the tour expected exit $expected)"; failed=1; }
}

title() { printf '\n== %s ==\n' "$*"; }

title "1. nomic-embed-text-v1.5 (trained at 2048) serving 8192-token embeddings on llama.cpp / llama-box"
run 1 check fixtures/nomic-embed-text-v1.5 --ctx 8k
run 0 flags fixtures/nomic-embed-text-v1.5 --ctx 8k --embedding --runtime llama-server,llama-box
echo "   -c 8192 -np 1: one slot of 8192 (the card's -np 4 splits -c into four slots of 2048); -b/-ub cover a"
echo "   whole input; the card's --rope-scaling yarn --rope-freq-scale .75 caps a slot at 2048/0.75 = 2730."

title "2. InternLM2 with rope_scaling: null, fixed with --factor 2 --type dynamic (in a copy)"
cp -R fixtures/broken/internlm2-scaling-null "$WORK/internlm2"
run 1 check "$WORK/internlm2" --ctx 64k
run 0 fix "$WORK/internlm2" --factor 2 --type dynamic
run 0 check "$WORK/internlm2" --ctx 64k

title "3. Yi-1.5-34B from 4K to 16K: linear (PI) or a static NTK base"
run 1 check fixtures/yi-1.5-34b --ctx 16k
run 0 flags fixtures/yi-1.5-34b --ctx 16384 --type linear --runtime llama.cpp,vllm
run 0 flags fixtures/yi-1.5-34b --ctx 16384 --type ntk --runtime llama.cpp,vllm --format shell

cat <<EOF

== Next ==
ropedoctor is installed in .venv, which is not on your PATH. Either:
  source .venv/bin/activate            then: ropedoctor check path/to/model --ctx 32k
  .venv/bin/ropedoctor check path/to/model --ctx 32k
or install the command for your user:  pipx install .   |   uv tool install .   |   pip install .  (in a venv)
Every command takes -h; README.md has these tasks, docs/ a page per command.
EOF
exit $failed
