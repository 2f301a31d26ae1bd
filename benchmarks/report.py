"""Shared by the benchmarks: the machine they ran on, markdown tables, and
ratios paired within a round of interleaved timings."""

import os
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment():
    """The CPU, its logical CPUs and every thread pool (threadpoolctl)."""
    lines = [f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs"]
    for info in threadpool_info():
        lines.append(f"{info['user_api']}: {info['internal_api']} "
                     f"{info.get('version')} ({info.get('architecture', '-')} "
                     f"kernel), {info['num_threads']} threads")
    return "\n".join(lines)


def print_table(title, header, rows):
    """A markdown table under a ``##`` title."""
    print(f"\n## {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


# Seconds to wait before timing a trainer: the thread pools of the one
# before it keep spinning for a while after their last task (OpenBLAS about
# 0.1 s, at its default OPENBLAS_THREAD_TIMEOUT), and a 2-thread trainer
# started meanwhile shares its cores with them (skdae's 2-thread tabular
# epoch ran 2x slower right after the 2-thread BLAS floor than alone).
SETTLE_SECONDS = 0.3


def settle():
    """Let the previous trainer's spinning threads go to sleep."""
    time.sleep(SETTLE_SECONDS)


def paired_ratio(times, reference):
    """Median over rounds of ``times / reference`` within each round.

    The machine's speed drifts by 10-30% from one minute to the next; a
    ratio of two epochs of one round cancels most of that drift, which a
    ratio of two medians taken over minutes does not.
    """
    return float(np.median(np.asarray(times) / np.asarray(reference)))
