"""Pieces of ``hearmask live`` that need no audio server: the keyboard controls and option checks."""

import threading
from pathlib import Path

import pytest

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live import KeyboardControls, LiveOptions, run_live


class TargetRecorder:
    """Stands in for the processor: keeps the last strengths set."""

    def __init__(self, alpha, beta):
        from hearmask.firmware_bridge.live_processor import ListenerTarget

        self._make = lambda a, b: ListenerTarget(a, b, (0.0,) * 8)
        self.target = self._make(alpha, beta)

    def set_strengths(self, alpha, beta):
        self.target = self._make(alpha, beta)


def test_keys_step_the_strengths_clamp_them_and_q_quits():
    processor, stop, lines = TargetRecorder(0.95, 0.05), threading.Event(), []
    keys = KeyboardControls(processor, stop, lines.append)
    assert keys.handle_key("+") and (processor.target.alpha, processor.target.beta) == (1.0, 0.05)
    keys.handle_key("[")
    assert processor.target.beta == 0.0
    keys.handle_key("]")
    keys.handle_key("-")
    assert (processor.target.alpha, processor.target.beta) == (0.9, 0.1)
    keys.handle_key("0")
    assert (processor.target.alpha, processor.target.beta) == (0.0, 0.0)
    assert keys.handle_key("x") and len(lines) == 5  # unknown keys are ignored silently
    assert not keys.handle_key("q") and stop.is_set()


def test_exaggeration_lets_the_keys_go_above_one():
    processor = TargetRecorder(1.0, 1.0)
    KeyboardControls(processor, threading.Event(), lambda text: None, allow_exaggeration=True).handle_key("+")
    assert processor.target.alpha == pytest.approx(1.1)


@pytest.mark.parametrize("changes, message", [({"in_file": Path("x.wav")}, "both --in-file and --out-file"),
                                              ({"duration_s": 0.0}, "duration")])
def test_inconsistent_options_are_refused_before_any_audio(changes, message):
    options = LiveOptions(model_dir=Path("nowhere"), audiogram_db_hl=(0.0,) * 8, **changes)
    with pytest.raises(HearmaskError, match=message):
        run_live(options)
