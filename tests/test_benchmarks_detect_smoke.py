"""The detection benchmarks of issue 15 run end to end in their --smoke mode (tiny random models on
synthetic data): the fine-tuning benchmark writes its picture, the busy-machine one times every backend."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_detect_finetune_smoke(tmp_path, capsys):
    import detect_finetune

    assert detect_finetune.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tiny-smoke: mAP50" in out and "optimizer auto: adamw" in out
    picture = cv2.imread(str(tmp_path / "detect_finetune_tiny-smoke_smoke.png"))
    assert picture is not None and picture.shape[0] >= 4 * 256 and picture.shape[1] == 2 * 256   # 4 val rows


@pytest.mark.slow   # ~25 s: a busy neighbour makes the pre-issue torch backend take ~0.5 s a run
def test_backends_busy_smoke(capsys):
    import backends_busy

    assert backends_busy.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for label, _ in backends_busy.VARIANTS:
        assert out.count(f"  {label}: ") == 2, label          # idle and busy
    assert "busy (a training process" in out and "torch / opencv when busy:" in out
