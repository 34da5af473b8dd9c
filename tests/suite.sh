#!/usr/bin/env bash
# `make test`: the suite as two pytest sessions at once, each with its own Ray, Prefect test harness and moto.
#   - the second session: the cluster tests (tests/flows/test_cluster*.py: a multi-node Ray cluster of their
#     own, from infra/local-cluster.sh, and a Prefect worker) and the tests built on the trained digits CLIP
#     (the `digits_clip` fixture: captioning quality, distillation, caption-noise curation, exact zero-shot);
#   - the main session: everything else, on one local Ray instance.
# As one session the suite left about 30% of 2 cores idle (28 min; it waits on process starts, Ray scheduling
# and servers); two sessions fill that time. The split keeps each session-scoped fixture in one session only.
# Usage: tests/suite.sh PYTEST [PYTEST_ARGS...]; the second session's output follows the main session's.
set -uo pipefail
cd "$(dirname "$0")/.."
pytest=$1
shift
second=(tests/flows/test_cluster.py tests/flows/test_cluster_deployments.py
        tests/unit/caption/test_caption_quality.py tests/unit/train/test_distillation.py
        tests/unit/curate/test_caption_noise.py tests/unit/eval/test_eval_zeroshot_exact.py)
log=$(mktemp "${TMPDIR:-/tmp}/clipline-second-session.XXXXXX.log")
# On an early exit, SIGTERM stops the second session through its fixtures' teardown (conftest.py turns it into
# KeyboardInterrupt), which takes its cluster's namespaces down.
second_pid=
trap '[ -z "$second_pid" ] || kill "$second_pid" 2>/dev/null; wait; rm -f "$log"' EXIT
# CLIPLINE_TEST_CPU_REPORT=FILE (CPU seconds per test, tests/support/cpu_report.py): the second session writes
# FILE.second.
CLIPLINE_TEST_CPU_REPORT=${CLIPLINE_TEST_CPU_REPORT:+$CLIPLINE_TEST_CPU_REPORT.second} \
    "$pytest" "$@" "${second[@]}" >"$log" 2>&1 &
second_pid=$!
ignores=()
for path in "${second[@]}"; do ignores+=("--ignore=$path"); done
"$pytest" "$@" "${ignores[@]}"
main_rc=$?
wait "$second_pid"
second_rc=$?
echo
echo "=================== the second session (${second[*]}) ==================="
cat "$log"
echo "main session: exit $main_rc; second session: exit $second_rc"
# pytest's exit 5 means no test was collected: a session the arguments left empty is no failure.
for rc in "$main_rc" "$second_rc"; do
    if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then exit "$rc"; fi
done
[ "$main_rc" = 0 ] || [ "$second_rc" = 0 ] || exit 5
