"""Silero VAD on onnxruntime, streaming, per-call state.

The model is the ONNX file shipped inside the `silero-vad` package (no download
at runtime); we call onnxruntime directly instead of the package's wrapper
because that wrapper needs torch. One `SileroVAD` (the ORT session) is shared by
every call in the process — `InferenceSession.run` is thread-safe and holds no
per-call state — while each call owns a small `VadStream` with the recurrent
state, 32 samples of context, and the speech/silence state machine.

At 8 kHz the model consumes 256-sample windows (32 ms); a 20 ms carrier frame is
160 samples, so a stream runs the model on ~3 of every 5 frames.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import numpy.typing as npt

_WINDOW = {8000: 256, 16000: 512}
_CONTEXT = {8000: 32, 16000: 64}


def bundled_model_path() -> Path:
    """Path of `silero_vad.onnx` inside the installed silero-vad package."""
    # find_spec locates the package without executing its __init__, which
    # imports torch (hundreds of MB and seconds of start-up we do not need).
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the silero-vad package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"silero-vad package has no bundled model at {path}")
    return path


class SileroVAD:
    """The shared ONNX session. Use `SileroVAD.shared()` in production code."""

    _shared: SileroVAD | None = None
    _lock = threading.Lock()

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        # One thread: calls run concurrently on the event loop, and ORT's own
        # thread pool would fight the server for the core it is pinned to.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_path or bundled_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._sr = {rate: np.array(rate, dtype=np.int64) for rate in _WINDOW}

    @classmethod
    def shared(cls) -> SileroVAD:
        with cls._lock:
            if cls._shared is None:
                cls._shared = SileroVAD()
            return cls._shared

    def infer(
        self, window: npt.NDArray[np.float32], state: npt.NDArray[np.float32], sample_rate: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Run a batch: window (B, context+W) float32 in [-1, 1], state (2, B, 128).
        Returns (probabilities (B,), new state)."""
        prob, new_state = self._session.run(
            None, {"input": window, "state": state, "sr": self._sr[sample_rate]}
        )
        return prob[:, 0], new_state


@dataclass(frozen=True)
class VadSettings:
    """Tunables for turning per-window probabilities into speech segments."""

    threshold: float = 0.5
    #: speech must last this long before it counts (filters clicks and coughs)
    min_speech_ms: int = 96
    #: and silence this long before speech is considered over
    min_silence_ms: int = 480
    sample_rate: int = 8000
    #: windows whose peak is below this level skip the model (probability 0,
    #: state reset): a quiet line costs almost nothing. None runs every window.
    energy_floor_dbfs: float | None = -60.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VAD threshold must be between 0 and 1, got {self.threshold}")
        if self.min_speech_ms < 0 or self.min_silence_ms < 0:
            raise ValueError("VAD min_speech_ms and min_silence_ms must be >= 0")
        if self.sample_rate not in _WINDOW:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {self.sample_rate}")


class VadEvent(Enum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


EventCallback = Callable[[VadEvent, float], None]


class VadStream:
    """Per-call streaming detector. Feed int16 samples, get start/end events.

    `speaking` is the debounced state; `last_probability` the raw model output.
    Event times are in ms of audio fed so far (the caller's stream clock).
    Without a batcher the model runs inline and `feed` returns the events; with
    a `VadBatcher` the windows are queued, run together with every other call's
    on the batcher's tick, and events arrive through `on_event` only.
    """

    def __init__(
        self,
        settings: VadSettings | None = None,
        model: SileroVAD | None = None,
        *,
        batcher: VadBatcher | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.settings = settings or VadSettings()
        self._batcher = batcher
        self._model = model or (batcher.model if batcher else SileroVAD.shared())
        self.on_event = on_event
        rate = self.settings.sample_rate
        self._window = _WINDOW[rate]
        self._context_len = _CONTEXT[rate]
        self._window_ms = 1000.0 * self._window / rate
        floor = self.settings.energy_floor_dbfs
        self._floor = None if floor is None else 32768.0 * 10 ** (floor / 20.0)
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self._buf = np.zeros(self._context_len + self._window, dtype=np.float32)
        self._fill = self._context_len
        self._loud = False  # the window being filled has a sample at or above the floor
        self._fed_ms = 0.0
        self._above_ms = 0.0
        self._below_ms = 0.0
        #: windows waiting for the batcher: (samples with context, end time ms)
        self.pending: deque[tuple[npt.NDArray[np.float32], float]] = deque()
        self.closed = False
        self.speaking = False
        self.last_probability = 0.0
        self.speech_started_at_ms: float | None = None
        self.speech_ended_at_ms: float | None = None

    @property
    def floor(self) -> float | None:
        """The energy floor as a 16-bit sample magnitude (None: no gating)."""
        return self._floor

    def close(self) -> None:
        """Stop delivering events (the call ended); pending windows are dropped."""
        self.closed = True
        self.pending.clear()

    def feed(self, samples: npt.NDArray[np.int16]) -> list[tuple[VadEvent, float]]:
        """Push caller samples; returns the events produced inline."""
        return self._push(samples, len(samples))

    def feed_quiet(self, n: int) -> list[tuple[VadEvent, float]]:
        """Push `n` samples the caller already knows are below the energy floor
        (e.g. from the µ-law codes, without decoding them): they count as silence."""
        if self._floor is None:
            raise ValueError("feed_quiet needs an energy floor (VadSettings.energy_floor_dbfs)")
        fill = self._fill
        if fill + n < len(self._buf):
            # the usual case, a frame that does not complete a window: no loop
            self._buf[fill:fill + n] = 0.0
            self._fill = fill + n
            self._fed_ms += 1000.0 * n / self.settings.sample_rate
            return []
        return self._push(None, n)

    def _push(self, samples: npt.NDArray[np.int16] | None, n: int) -> list[tuple[VadEvent, float]]:
        events: list[tuple[VadEvent, float]] = []
        pos = 0
        rate = self.settings.sample_rate
        full = self._context_len + self._window
        floor = self._floor
        while pos < n:
            take = min(n - pos, full - self._fill)
            if samples is None:
                self._buf[self._fill:self._fill + take] = 0.0
            else:
                chunk = samples[pos:pos + take]
                self._buf[self._fill:self._fill + take] = chunk
                if floor is not None and not self._loud and take:
                    self._loud = max(int(chunk.max()), -int(chunk.min())) >= floor
            self._fill += take
            pos += take
            if self._fill < full:
                continue
            end_ms = self._fed_ms + 1000.0 * pos / rate
            quiet = floor is not None and not self._loud
            self._loud = False
            if quiet:
                self._buf[: self._context_len] = self._buf[self._window:]
                self._fill = self._context_len
                if not self.pending:  # keep order with windows still queued for the batch
                    self.state = np.zeros((2, 1, 128), dtype=np.float32)
                    event = self.apply_probability(0.0, end_ms)
                    if event is not None:
                        events.append(event)
                    continue
                window = np.zeros(full, dtype=np.float32)
            else:
                window = self._buf * (1.0 / 32768.0)
                self._buf[: self._context_len] = self._buf[self._window:]
                self._fill = self._context_len
            if self._batcher is not None:
                self.pending.append((window, end_ms))
                self._batcher.schedule(self)
                continue
            prob, self.state = self._model.infer(window.reshape(1, -1), self.state, rate)
            event = self.apply_probability(float(prob[0]), end_ms)
            if event is not None:
                events.append(event)
        self._fed_ms += 1000.0 * n / rate
        return events

    def apply_probability(self, prob: float, end_ms: float) -> tuple[VadEvent, float] | None:
        """Advance the speech/silence state machine with one window's result."""
        self.last_probability = prob
        s = self.settings
        # Hysteresis as in silero's own iterator: leaving speech needs the
        # probability to fall clearly below the threshold, not just dip.
        if prob >= s.threshold:
            self._above_ms += self._window_ms
            self._below_ms = 0.0
        elif prob < s.threshold - 0.15:
            self._below_ms += self._window_ms
            self._above_ms = 0.0
        event: tuple[VadEvent, float] | None = None
        if not self.speaking and self._above_ms >= max(s.min_speech_ms, self._window_ms):
            self.speaking = True
            self.speech_started_at_ms = end_ms - self._above_ms
            event = (VadEvent.SPEECH_START, self.speech_started_at_ms)
        elif self.speaking and self._below_ms >= max(s.min_silence_ms, self._window_ms):
            self.speaking = False
            self.speech_ended_at_ms = end_ms - self._below_ms
            event = (VadEvent.SPEECH_END, self.speech_ended_at_ms)
        if event is not None and self.on_event is not None and not self.closed:
            self.on_event(*event)
        return event


class VadBatcher:
    """Runs the VAD windows of all calls in a process as one batched inference.

    Silero costs ~210 µs for one window but ~60 µs per window in a batch of 32+
    (measured by `bench/audio_bench.py`): with 100 calls on a core that is the
    difference between 70 % and 20 % of the core. VAD only drives barge-in and
    turn timing, where the model already needs ~100 ms of speech, so waiting up
    to `interval_ms` for a batch costs nothing the caller can hear. Must be used
    from one event loop thread.
    """

    def __init__(self, interval_ms: float = 32.0, model: SileroVAD | None = None) -> None:
        self.model = model or SileroVAD.shared()
        self.interval = interval_ms / 1000.0
        self._ready: dict[int, VadStream] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.windows = 0

    def schedule(self, stream: VadStream) -> None:
        """Queue ``stream``'s pending windows for the next batch (on the running loop)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # The batcher outlives event loops (one per process; a loop per
            # `asyncio.run`, e.g. per test): a timer left on a finished loop never
            # fires, so without this no later loop would get a VAD event again.
            # What was queued there belongs to that loop's streams.
            if self._handle is not None:
                self._handle.cancel()
            self._handle = None
            self._ready.clear()
            self._loop = loop
        self._ready[id(stream)] = stream
        if self._handle is None:
            self._handle = loop.call_later(self.interval, self.run_pending)

    def run_pending(self) -> None:
        """Run every queued window now (one batch per window depth)."""
        self._handle = None
        streams = [s for s in self._ready.values() if s.pending and not s.closed]
        self._ready.clear()
        by_rate: dict[int, list[VadStream]] = {}
        for s in streams:
            by_rate.setdefault(s.settings.sample_rate, []).append(s)
        for rate, group in by_rate.items():
            # a stream may hold several windows if the loop stalled: its state is
            # recurrent, so its windows go one per round, in order
            while group:
                windows = np.stack([s.pending[0][0] for s in group])
                states = np.concatenate([s.state for s in group], axis=1)
                probs, new_states = self.model.infer(windows, states, rate)
                self.batches += 1
                self.windows += len(group)
                for i, s in enumerate(group):
                    s.state = new_states[:, i:i + 1, :].copy()
                    _, end_ms = s.pending.popleft()
                    s.apply_probability(float(probs[i]), end_ms)
                group = [s for s in group if s.pending and not s.closed]
