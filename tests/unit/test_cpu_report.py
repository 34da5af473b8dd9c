"""support/cpu_report.py: the CPU of a test session's process tree, workers of a parent that ignores SIGCHLD
(as Ray's raylet does) included."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from support.cpu_report import Meter

BURN_S = 0.8
# A parent that ignores SIGCHLD, as the raylet does, starts a child that burns BURN_S of CPU, prints what it used
# and exits; the parent outlives it. No reaped-children count ever holds the child's CPU.
RAYLET_LIKE = textwrap.dedent(f"""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    burner = ("import time\\nend = time.process_time() + {BURN_S}\\nwhile time.process_time() < end: pass\\n"
              "print(time.process_time())")
    subprocess.Popen([sys.executable, "-c", burner])
    time.sleep(2.5)
""")


def test_a_worker_of_a_parent_that_ignores_sigchld_counts_what_it_used():
    meter = Meter(period_s=0.2)
    started = meter.start()
    run = subprocess.run([sys.executable, "-c", RAYLET_LIKE], capture_output=True, text=True, check=True)
    meter.stop("raylet-like", started)
    used = float(run.stdout)  # the burner's own figure
    assert used >= BURN_S
    # At most one reading period of the burner's end escapes; the parent adds its own start-up.
    assert used - 0.25 <= meter.costs[0].tree_cpu_s <= used + 1.5, (meter.costs[0], used)


def test_a_process_outside_the_tree_does_not_count():
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter = Meter(root=idle.pid, period_s=0.2)  # busy is idle's sibling, not its child
        started = meter.start()
        time.sleep(1.5)
        meter.stop("idle", started)
        assert meter.costs[0].tree_cpu_s < 0.2 and meter.costs[0].machine_cpu_s > 0.5, meter.costs[0]
    finally:
        for proc in (idle, busy):
            proc.kill()
            proc.wait()


def test_the_meter_names_each_test_and_ranks_them_by_cpu(tmp_path):
    meter = Meter(period_s=0.2)
    for name, code in (("idle", "pass"), ("burn", "end = __import__('time').process_time() + 0.6\n"
                                                  "while __import__('time').process_time() < end: pass")):
        started = meter.start()
        subprocess.run([sys.executable, "-c", code], check=True)
        meter.stop(name, started)
    meter.write(str(tmp_path / "cpu.tsv"))
    rows = [line.split("\t") for line in (tmp_path / "cpu.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["idle", "burn"] and float(rows[1][2]) > float(rows[0][2]) + 0.3, rows
    assert meter.top_lines(1)[1].endswith("burn")
