"""The session's output mixer: speech queue, background and thinking layers.

One `Mixer` per session; `mix_frame()` is called once per output frame by
the pacer and returns the PCM plus what the engine needs to track speech:
which utterance tags sounded in the frame, and which utterances ended in it.

Sample counts in this API are sample frames at the output rate (one sample
per channel), i.e. time. The arithmetic lives in the Cython kernel
(parley.audio._mixer): float32 gains, float32 accumulation, round to int32,
saturation to int16, equal-power fades, raised-cosine ducking ramps.

Speech plays in push order, utterance after utterance. Pushing audio for a
new tag ends the previous tag; `end_speech(tag)` ends a tag explicitly (it
is reported once its last sample has gone out). The queue holds at most
`speech_limit_ms` of audio; `push_speech` raises ResourceExhausted and
queues nothing when a chunk does not fit, so the engine back-pressures TTS by
waiting until `speech_space_samples` is large enough.

An underrun (the last utterance is not ended and its audio runs out) fades
speech out over what is left, keeps it silent until enough audio is queued
again and fades it back in, over UNDERRUN_FADE_MS each way (see the kernel).
A new utterance starts at full level. Ending an utterance with `end_speech`
once its last audio is pushed tells its end from an underrun (an utterance
left open has its last ~30 ms faded out, as if its audio ran dry).

A mixer is not thread-safe: drive it from one thread (or the event loop).

Over 400 lines on purpose: the speech queue's bookkeeping and the layer
rules drive one kernel, and split apart they would share its state.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from parley.audio._mixer import MixKernel
from parley.audio.layers import Clip
from parley.audio.pcm import PcmLike, as_int16
from parley.errors import InvalidArgument, ResourceExhausted

LayerName = Literal["background", "thinking"]
LayerMode = Literal["mixing", "playback"]
Scope = Literal["all", "current"]

LAYER_NAMES: tuple[str, ...] = ("background", "thinking")
DEFAULT_LAYER_GAIN = {"background": 0.3, "thinking": 0.5}
MAX_GAIN = 2.0
MAX_DUCK_DB = 40.0
MAX_FADE_MS = 10_000
DEFAULT_FADE_IN_MS = 100
DEFAULT_FADE_OUT_MS = 400
UNDERRUN_FADE_MS = 10
#: Played-sample counts of ended utterances kept for played_samples().
ENDED_HISTORY = 256
_SLOTS = {"background": (0, 1), "thinking": (2, 3)}  # two per layer, to crossfade a replaced sound


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """An utterance whose speech is over: all played, interrupted or dropped."""

    tag: Hashable
    played_samples: int
    interrupted: bool


class MixedFrame(NamedTuple):
    """One output frame and the speech bookkeeping that goes with it (a named tuple: made 50 times a second)."""

    pcm: bytes
    speech_samples: int
    """Sample frames of speech in this frame (0: only layers or silence)."""
    speech: tuple[tuple[Hashable, int], ...]
    """(tag, sample frames) of each utterance heard in this frame, in play order."""
    ended: tuple[SpeechEnd, ...]
    """Utterances whose last sample went out in this frame, or that were
    interrupted or dropped since the previous frame, in the order they ended."""

    @property
    def tag(self) -> Hashable | None:
        """The tag with the most speech in this frame (the earlier on a tie)."""
        if len(self.speech) == 1:  # the usual frame: one utterance's speech
            return self.speech[0][0]
        return max(self.speech, key=lambda s: s[1])[0] if self.speech else None


class _Utterance:
    __slots__ = ("tag", "pending", "played", "ended", "interrupted")

    def __init__(self, tag: Hashable) -> None:
        self.tag = tag
        self.pending = 0  # queued in the kernel, not yet mixed
        self.played = 0
        self.ended = False
        self.interrupted = False


class Mixer:
    """Speech plus two layers ("background", "thinking") mixed into int16 frames."""

    def __init__(
        self,
        sample_rate: int,
        channels: int = 1,
        frame_ms: int = 20,
        speech_limit_ms: int = 10_000,
        speech_gain: float = 1.0,
    ) -> None:
        if not 8000 <= sample_rate <= 48000:
            raise InvalidArgument("sample_rate", f"must be 8000..48000 Hz, got {sample_rate}")
        if channels not in (1, 2):
            raise InvalidArgument("channels", f"must be 1 or 2, got {channels}")
        if not 1 <= frame_ms <= 1000 or sample_rate * frame_ms % 1000:
            raise InvalidArgument("frame_ms", f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        if not frame_ms <= speech_limit_ms <= 600_000:
            raise InvalidArgument("speech_limit_ms", f"must be {frame_ms}..600000, got {speech_limit_ms}")
        _check_gain(speech_gain, "speech_gain")
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.speech_limit_samples = sample_rate * speech_limit_ms // 1000
        self._k = MixKernel(channels, self.frame_samples, self.speech_limit_samples * channels)
        self._k.set_speech_gain(speech_gain)
        self._k.set_underrun_fade(self._samples(UNDERRUN_FADE_MS))
        self._queue: deque[_Utterance] = deque()
        self._ended: list[SpeechEnd] = []
        self._history: OrderedDict[Hashable, SpeechEnd] = OrderedDict()
        self._current = {"background": 0, "thinking": 2}
        self._fade_out = {"background": DEFAULT_FADE_OUT_MS, "thinking": DEFAULT_FADE_OUT_MS}
        self._speaking = False
        self._paused = False
        self._paused_tag: Hashable | None = None  # the utterance a pause holds
        self.set_ducking(0.0)

    # ---- speech -----------------------------------------------------------------

    @property
    def speech_queued_samples(self) -> int:
        """Speech waiting to be mixed."""
        return self._k.speech_queued

    @property
    def speech_space_samples(self) -> int:
        """How much more speech push_speech accepts right now."""
        return self.speech_limit_samples - self._k.speech_queued

    @property
    def speaking(self) -> bool:
        """Whether the last mixed frame carried speech."""
        return self._speaking

    @property
    def speech_paused(self) -> bool:
        """Whether speech is held: paused, or replaced by a playback-mode layer."""
        return self._k.speech_held

    def push_speech(self, pcm: PcmLike, tag: Hashable) -> bool:
        """Queue int16 speech already at the output rate (interleaved if stereo).

        Returns False, queuing nothing, for a tag that was interrupted or
        dropped (late TTS audio is discarded). Raises InvalidArgument for
        malformed PCM or a tag whose speech already ended, and
        ResourceExhausted (queuing nothing) when the chunk does not fit.
        """
        arr = as_int16(pcm, self.channels)
        if self._was_interrupted(tag):
            return False
        last = self._queue[-1] if self._queue else None
        if last is None or last.tag != tag or last.ended:
            if any(u.tag == tag for u in self._queue):
                raise InvalidArgument("tag", f"speech for {tag!r} already ended")
            if last is not None:
                last.ended = True
            last = _Utterance(tag)
            self._queue.append(last)
            self._k.new_utterance()
        if not self._k.push(arr):
            frames = arr.size // self.channels
            raise ResourceExhausted(
                "speech_queue",
                f"speech queue full: {frames} samples do not fit in the {self.speech_space_samples} free "
                f"(limit {self.speech_limit_samples}); wait for space or push smaller chunks",
            )
        last.pending += arr.size // self.channels
        self._k.speech_open = True
        return True

    def end_speech(self, tag: Hashable) -> None:
        """Mark that no more audio comes for `tag` (also for a tag with no audio)."""
        for u in self._queue:
            if u.tag == tag:
                u.ended = True
                break
        else:
            if tag in self._history:
                return
            if self._queue:
                self._queue[-1].ended = True
            u = _Utterance(tag)
            u.ended = True
            self._queue.append(u)
        self._sync_open()

    def played_samples(self, tag: Hashable) -> int:
        """Speech samples of `tag` mixed so far (0 for an unknown tag)."""
        for u in self._queue:
            if u.tag == tag:
                return u.played
        end = self._history.get(tag)
        return end.played_samples if end else 0

    def interrupt(self, fade_ms: int = DEFAULT_FADE_OUT_MS, scope: Scope = "all") -> int:
        """Stop the current utterance with an equal-power fade; returns its played samples.

        The fade runs over the next `fade_ms` of the current utterance's own
        audio (less if less is queued), and that tail counts as played. Scope
        "all" also drops every queued utterance; "current" keeps later ones,
        which play after the tail.
        """
        _check_fade(fade_ms, "fade_ms")
        if scope not in ("all", "current"):
            raise InvalidArgument("scope", f"must be 'all' or 'current', got {scope!r}")
        self._pop_done()
        if not self._queue:
            return 0
        head = self._queue[0]
        # Fade only speech that is sounding; what has not started can stop at once.
        audible = self._speaking and head.played > 0 and self._k.speech_level > 0.0
        tail = min(self._samples(fade_ms), head.pending) if audible else 0
        if scope == "all":
            self._k.remove(tail, self._k.speech_queued - tail)
            while len(self._queue) > 1:
                self._drop(self._queue[1])
                del self._queue[1]
        else:
            self._k.remove(tail, head.pending - tail)
        self._k.cut(tail)
        self._end_pause()
        head.pending = tail
        head.ended = head.interrupted = True
        self._sync_open()
        return head.played + tail

    def drop_tag(self, tag: Hashable, fade_ms: int = DEFAULT_FADE_OUT_MS) -> int:
        """Stop one utterance: the current one fades out (like interrupt "current"),
        a queued one is removed unheard. Returns its played samples."""
        self._pop_done()
        for index, u in enumerate(self._queue):
            if u.tag != tag:
                continue
            if index == 0:
                return self.interrupt(fade_ms, "current")
            offset = sum(v.pending for v in list(self._queue)[:index])
            self._k.remove(offset, u.pending)
            del self._queue[index]
            self._drop(u)
            self._sync_open()
            return 0
        return self.played_samples(tag)

    def pause_speech(self, fade_ms: int = DEFAULT_FADE_OUT_MS) -> None:
        """Fade the current utterance out and hold it; queued speech stays (for false interruptions).

        Samples mixed during the fade count as played; resume continues after
        them. The pause belongs to the utterance playing: it ends when that
        utterance ends (interrupted, dropped, or played out during the fade),
        so it never holds the speech that comes after.
        """
        _check_fade(fade_ms, "fade_ms")
        self._pop_done()
        self._paused, self._paused_tag = True, self._queue[0].tag if self._queue else None
        self._k.set_paused(True, self._samples(fade_ms))

    def resume_speech(self, fade_ms: int = DEFAULT_FADE_IN_MS) -> None:
        """Continue paused speech with an equal-power fade in."""
        _check_fade(fade_ms, "fade_ms")
        self._paused, self._paused_tag = False, None
        self._k.set_paused(False, self._samples(fade_ms))

    def _end_pause(self) -> None:
        """Lift a pause whose utterance is over; what plays next starts at full level."""
        if self._paused:
            self._paused, self._paused_tag = False, None
            self._k.set_paused(False, self._samples(DEFAULT_FADE_IN_MS))

    # ---- layers -------------------------------------------------------------------

    def play_layer(
        self,
        name: LayerName,
        clip: Clip,
        gain: float | None = None,
        looping: bool = True,
        mode: LayerMode = "mixing",
        fade_in_ms: int = DEFAULT_FADE_IN_MS,
        fade_out_ms: int = DEFAULT_FADE_OUT_MS,
    ) -> None:
        """Start `clip` on a layer, crossfading from whatever the layer played.

        "mixing" plays under speech (the background is ducked while speech
        sounds); "playback" plays instead of speech: speech fades out (over
        `fade_in_ms`) and waits, queued, until the layer stops, then fades
        back in. `gain` None picks the layer's default (0.3 / 0.5).
        `fade_out_ms` is the layer's fade for stop_layer without a length.
        """
        slots = self._slots(name)
        if not isinstance(clip, Clip):
            raise InvalidArgument("layer.source", f"expected a Clip, got {type(clip).__name__}")
        if clip.sample_rate != self.sample_rate or clip.channels != self.channels:
            raise InvalidArgument(
                "layer.source",
                f"clip is {clip.sample_rate} Hz x{clip.channels}, mixer is {self.sample_rate} Hz x{self.channels}",
            )
        gain = DEFAULT_LAYER_GAIN[name] if gain is None else gain
        _check_gain(gain, "layer.gain")
        if mode not in ("mixing", "playback"):
            raise InvalidArgument("layer.mode", f"must be 'mixing' or 'playback', got {mode!r}")
        _check_fade(fade_in_ms, "layer.fade_in_ms")
        _check_fade(fade_out_ms, "layer.fade_out_ms")
        current = self._current[name]
        if self._k.slot_active(current) and not self._k.slot_stopping(current):
            self._k.slot_stop(current, self._samples(self._fade_out[name]))
            current = slots[1] if current == slots[0] else slots[0]
        if self._k.slot_active(current):
            # Still fading out from an earlier replacement: let the quieter one go now.
            self._k.slot_stop(current, 0)
        playback = mode == "playback"
        if playback:
            self._k.set_hold_fades(self._samples(fade_in_ms), self._samples(fade_out_ms))
        self._k.slot_play(
            current, clip.pcm, float(gain), bool(looping), playback, name == "background", self._samples(fade_in_ms)
        )
        self._current[name] = current
        self._fade_out[name] = fade_out_ms

    def stop_layer(self, name: LayerName, fade_ms: int | None = None) -> None:
        """Fade a layer out (default: its fade_out_ms) from the level it has reached."""
        slots = self._slots(name)
        fade = self._fade_out[name] if fade_ms is None else fade_ms
        _check_fade(fade, "fade_ms")
        for slot in slots:
            self._k.slot_stop(slot, self._samples(fade))

    def layer_playing(self, name: LayerName) -> bool:
        """Whether the layer sounds (fading out included)."""
        return any(self._k.slot_active(slot) for slot in self._slots(name))

    def set_ducking(self, db: float, attack_ms: int = 100, release_ms: int = 300) -> None:
        """Attenuate the background by `db` (0..40) while speech sounds, with smooth ramps."""
        if not 0.0 <= db <= MAX_DUCK_DB:
            raise InvalidArgument("duck_db", f"must be 0..{MAX_DUCK_DB:g} dB, got {db!r}")
        _check_fade(attack_ms, "attack_ms")
        _check_fade(release_ms, "release_ms")
        self._k.set_ducking(10.0 ** (-db / 20.0), self._samples(attack_ms), self._samples(release_ms))

    # ---- mixing -------------------------------------------------------------------

    def mix_frame(self) -> MixedFrame:
        """Mix the next frame (exactly frame_samples sample frames)."""
        n = self._k.mix()
        self._speaking = n > 0
        speech: list[tuple[Hashable, int]] = []
        left = n
        for u in self._queue:
            if left == 0:
                break
            take = min(left, u.pending)
            if take:
                u.pending -= take
                u.played += take
                left -= take
                speech.append((u.tag, take))
        self._pop_done()
        ended: tuple[SpeechEnd, ...] = ()
        if self._ended:
            ended, self._ended = tuple(self._ended), []
        return MixedFrame(self._k.out.tobytes(), n, tuple(speech), ended)

    # ---- internals ------------------------------------------------------------------

    def _sync_open(self) -> None:
        """Tell the kernel whether more speech may come for what it holds (an underrun, not an end)."""
        self._k.speech_open = bool(self._queue) and not self._queue[-1].ended

    def _pop_done(self) -> None:
        """Retire utterances at the head that ended and have nothing left to play."""
        while self._queue and self._queue[0].ended and self._queue[0].pending == 0:
            u = self._queue.popleft()
            self._remember(SpeechEnd(u.tag, u.played, u.interrupted))
            if self._paused and u.tag == self._paused_tag:
                self._end_pause()

    def _drop(self, u: _Utterance) -> None:
        """Record a queued utterance removed before it played."""
        u.interrupted = True
        self._remember(SpeechEnd(u.tag, u.played, True))

    def _was_interrupted(self, tag: Hashable) -> bool:
        for u in self._queue:
            if u.tag == tag:
                return u.interrupted
        end = self._history.get(tag)
        return end is not None and end.interrupted

    def _remember(self, end: SpeechEnd) -> None:
        self._ended.append(end)
        self._history[end.tag] = end
        self._history.move_to_end(end.tag)
        while len(self._history) > ENDED_HISTORY:
            self._history.popitem(last=False)

    def _samples(self, ms: int) -> int:
        return self.sample_rate * ms // 1000

    def _slots(self, name: str) -> tuple[int, int]:
        slots = _SLOTS.get(name)
        if slots is None:
            raise InvalidArgument("layer", f"unknown layer {name!r}; known: {LAYER_NAMES}")
        return slots


def _check_gain(gain: float, field: str) -> None:
    if not isinstance(gain, (int, float)) or not 0.0 <= gain <= MAX_GAIN:
        raise InvalidArgument(field, f"must be a linear gain in 0..{MAX_GAIN:g}, got {gain!r}")


def _check_fade(ms: int, field: str) -> None:
    if not isinstance(ms, int) or not 0 <= ms <= MAX_FADE_MS:
        raise InvalidArgument(field, f"must be 0..{MAX_FADE_MS} ms, got {ms!r}")
