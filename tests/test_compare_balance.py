"""compare_balance sums logged update counts into windows the way both runs log them."""

from __future__ import annotations

import json

import pytest

from tests.reference import compare_balance


def _write(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


def test_windows_sum_complete_windows_and_keep_the_last_of_a_relogged_batch(tmp_path):
  records = [{"step": s, "g_updates": s // 50, "d_updates": 1, "thres": s / 1000}
             for s in (50, 100, 150, 200, 250)]
  records.insert(1, {"step": 100, "g_updates": 99, "d_updates": 99, "thres": 9.0})  # pre-resume
  records.append({"step": 300, "d_loss": 0.5})  # a line without counts (e.g. evaluation)
  counts = compare_balance.read_counts(_write(tmp_path / "m.jsonl", records), "step")
  assert counts[100] == {"g_updates": 2, "d_updates": 1, "thres": 0.1}
  per_window = compare_balance.windows(counts, 100)
  assert sorted(per_window) == [100, 200]  # 201-300 is not complete
  assert per_window[200]["g_updates"] == 3 + 4 and per_window[200]["d_updates"] == 2
  assert per_window[200]["d_fraction"] == pytest.approx(2 / 9)
  assert per_window[200]["thres"] == 0.2


def test_table_marks_windows_a_run_has_not_reached(tmp_path):
  project = {1000: {"d_fraction": 0.25, "thres": 1.0}, 2000: {"d_fraction": 0.1, "thres": 1.0}}
  reference = {1000: {"d_fraction": 0.3, "thres": 0.994}}
  lines = compare_balance.table({"project": project, "reference": reference}, 1000).splitlines()
  assert lines[2] == "| 1-1000 | 0.750 | 0.250 | 1.000 | 0.700 | 0.300 | 0.994 |"
  assert lines[3] == "| 1001-2000 | 0.900 | 0.100 | 1.000 | - | - | - |"
