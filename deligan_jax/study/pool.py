"""Runs commands over a pool of worker processes, each with its own log, and says how each ended."""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import subprocess
import threading
import time


def run_all(jobs: list[tuple[str, list[str], str]], workers: int) -> list[str]:
  """Runs each ``(name, argv, log path)`` as a process, ``workers`` at a time.

  Prints a line as each starts and ends; returns the names of those that failed. A
  run's output (its progress bar included) goes to its log, appended to, so a resumed
  run's log holds every attempt.
  """
  printed = threading.Lock()
  total, done = len(jobs), [0]

  def say(line: str) -> None:
    with printed:
      print(line, flush=True)

  def one(job) -> bool:
    name, argv, log = job
    os.makedirs(os.path.dirname(log), exist_ok=True)
    start = time.monotonic()
    say(f"start  {name}  (log: {log})")
    with open(log, "a") as out:
      out.write(f"$ {shlex.join(argv)}\n")
      out.flush()
      code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL).returncode
    with printed:
      done[0] += 1
      status = "done  " if code == 0 else f"FAILED (status {code}; the end of {log} says why)"
      print(f"{status} {name}  [{done[0]}/{total}, {(time.monotonic() - start) / 60:.1f} min]",
            flush=True)
    return code == 0

  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    results = list(pool.map(one, jobs))
  return [name for (name, _, _), ok in zip(jobs, results) if not ok]
