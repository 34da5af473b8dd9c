"""support/cpu_report.py: the CPU of a test session's process tree, children included."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from support.cpu_report import Meter, tree_cpu_s

BURN = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"


def test_a_reaped_child_counts_as_much_as_the_kernel_says_it_used():
    before_tree, before = tree_cpu_s(os.getpid()), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", BURN], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert used >= 0.6
    assert tree_cpu_s(os.getpid()) - before_tree >= used - 0.05  # this process's own ticks may add a little


def test_a_live_grandchild_counts_and_a_process_outside_the_tree_does_not():
    # A shell that starts a burner and waits: the burner is a grandchild, alive while it is measured.
    parent = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{BURN}while True: time.sleep(1)\n'; true"])
    outsider = subprocess.Popen([sys.executable, "-c", BURN + "while True: time.sleep(1)\n"],
                                start_new_session=True)
    try:
        time.sleep(3)  # both burn 0.6 s, then sleep
        assert tree_cpu_s(outsider.pid) >= 0.55
        assert 0.55 <= tree_cpu_s(parent.pid) < 1.0  # the grandchild's 0.6 s, not the outsider's too
    finally:
        for proc in (parent, outsider):
            proc.kill()
            proc.wait()


def test_the_meter_names_each_test_and_ranks_them_by_cpu(tmp_path):
    meter = Meter()
    started = meter.start()
    meter.stop("idle", started)
    started = meter.start()
    subprocess.run([sys.executable, "-c", BURN], check=True)
    meter.stop("burn", started)
    meter.write(str(tmp_path / "cpu.tsv"))
    rows = [line.split("\t") for line in (tmp_path / "cpu.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["idle", "burn"] and float(rows[1][2]) >= 0.55 > float(rows[0][2])
    assert meter.top_lines(1)[1].endswith("burn")
