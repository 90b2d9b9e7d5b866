"""Speech through the Mixer: tags, end-of-utterance, interrupts, pause/resume,
bounded queue, playback mode and ducking."""

from __future__ import annotations

import numpy as np
import pytest
from mix_reference import equal_power_out, max_step, run, tone

from parley.audio import Mixer, SpeechEnd, clip_from_pcm, load_clip
from parley.errors import InvalidArgument, ResourceExhausted

RATE = 24000
FRAME = 480


def voice(seconds: float, seed: int = 0) -> np.ndarray:
    """A speech-like int16 signal: a few harmonics with a slow syllable envelope."""
    t = np.arange(int(RATE * seconds)) / RATE
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(h * phase) / h for h in (1, 2, 3, 5))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t + seed) ** 2
    return np.rint(x * env / 1.9 * 20000).astype(np.int16)


def tags(frame) -> tuple:
    return tuple(tag for tag, _ in frame.speech)


def test_frames_carry_tags_and_utterances_end_after_their_last_sample():
    m = Mixer(RATE)
    a, b = voice(0.05), voice(0.03, seed=1)  # 1200 and 720 samples
    m.push_speech(a, "a")
    m.push_speech(b.tobytes(), "b")
    m.end_speech("b")
    f1, f2, f3, f4, f5 = (m.mix_frame() for _ in range(5))
    assert tags(f1) == ("a",) and f1.speech_samples == FRAME and f1.ended == ()
    assert f3.speech == (("a", 240), ("b", 240)) and f3.tag == "a"
    assert f3.ended == (SpeechEnd("a", 1200, False),)
    assert tags(f4) == ("b",) and f4.ended == (SpeechEnd("b", 720, False),)
    assert f5.speech_samples == 0 and f5.ended == () and f5.tag is None
    out = np.concatenate([np.frombuffer(f.pcm, np.int16) for f in (f1, f2, f3, f4)])
    assert np.array_equal(out[:1920], np.concatenate([a, b]))
    assert m.played_samples("a") == 1200 and m.played_samples("b") == 720
    assert not m.speaking


def test_an_open_utterance_is_not_reported_until_ended():
    m = Mixer(RATE)
    m.push_speech(voice(0.02), "a")
    assert m.mix_frame().ended == ()
    assert m.mix_frame().ended == ()  # underrun: more audio may come
    m.push_speech(voice(0.02), "a")
    m.end_speech("a")
    assert m.mix_frame().ended == (SpeechEnd("a", 960, False),)
    m.push_speech(voice(0.01), "b")
    m.push_speech(voice(0.01), "c")  # ends "b"
    with pytest.raises(InvalidArgument) as err:
        m.push_speech(voice(0.01), "b")
    assert err.value.field == "tag"


def test_end_speech_without_audio_is_reported():
    m = Mixer(RATE)
    m.end_speech("silent")
    assert m.mix_frame().ended == (SpeechEnd("silent", 0, False),)


@pytest.mark.parametrize("at", [0.13, 0.31, 0.57])
def test_interrupt_all_fades_without_a_click_and_reports_what_was_heard(at):
    m = Mixer(RATE)
    speech = voice(2.0)
    m.push_speech(speech, "a")
    m.push_speech(voice(1.0, seed=2), "b")
    frames = int(at * RATE) // FRAME
    head = run(m, frames)
    played = m.interrupt(200)
    assert played == frames * FRAME + RATE // 5
    rest = [m.mix_frame() for _ in range(15)]
    out = np.concatenate([head] + [np.frombuffer(f.pcm, np.int16) for f in rest])
    assert max_step(out) <= max_step(speech)
    ends = [e for f in rest for e in f.ended]
    assert ends == [SpeechEnd("b", 0, True), SpeechEnd("a", played, True)]
    assert all(tags(f) in ((), ("a",)) for f in rest)
    assert sum(f.speech_samples for f in rest) == RATE // 5
    tail = out[frames * FRAME : frames * FRAME + RATE // 5]
    expected = speech[frames * FRAME : frames * FRAME + RATE // 5] * equal_power_out(RATE // 5)
    assert np.max(np.abs(tail - expected)) <= 1
    assert m.speech_queued_samples == 0


def test_interrupt_current_keeps_later_utterances():
    m = Mixer(RATE)
    m.push_speech(voice(1.0), "a")
    m.push_speech(voice(0.1, seed=3), "b")
    m.end_speech("b")
    run(m, 5)
    assert m.interrupt(100, scope="current") == 5 * FRAME + 2400
    seen = [m.mix_frame() for _ in range(12)]
    assert [e.tag for f in seen for e in f.ended] == ["a", "b"]
    assert m.played_samples("a") == 5 * FRAME + 2400
    assert m.played_samples("b") == 2400


def test_interrupt_before_speech_is_heard_is_immediate():
    m = Mixer(RATE)
    m.push_speech(voice(1.0), "a")
    assert m.interrupt() == 0
    f = m.mix_frame()
    assert f.speech_samples == 0 and f.ended == (SpeechEnd("a", 0, True),)


def test_drop_tag_removes_a_queued_utterance():
    m = Mixer(RATE)
    a, c = voice(0.04), voice(0.04, seed=5)
    m.push_speech(a, "a")
    m.push_speech(voice(0.5, seed=4), "b")
    m.push_speech(c, "c")
    m.end_speech("c")
    assert m.drop_tag("b") == 0
    out = run(m, 5)
    assert np.array_equal(out[: a.size + c.size], np.concatenate([a, c]))
    assert m.played_samples("c") == c.size


def test_pause_fades_out_holds_and_resume_continues_where_it_stopped():
    m = Mixer(RATE)
    speech = voice(3.0)
    m.push_speech(speech, "a")
    run(m, 10)
    m.pause_speech(100)
    fading = run(m, 5)
    consumed = m.played_samples("a")
    assert consumed == 10 * FRAME + RATE // 10
    held = run(m, 10)
    assert not held.any() and m.played_samples("a") == consumed and m.speech_paused
    m.resume_speech(100)
    back = run(m, 10)
    out = np.concatenate([fading, held, back])
    assert max_step(out) <= max_step(speech)
    # After the fade in, the output is the speech from exactly where it paused.
    n_in = RATE // 10
    assert np.array_equal(back[n_in:], speech[consumed + n_in : consumed + back.size])
    assert m.played_samples("a") == consumed + back.size


def test_speech_queue_is_bounded_and_nothing_is_queued_on_overflow():
    m = Mixer(RATE, speech_limit_ms=100)
    assert m.speech_space_samples == 2400
    m.push_speech(np.zeros(2000, np.int16), "a")
    with pytest.raises(ResourceExhausted) as err:
        m.push_speech(np.zeros(401, np.int16), "a")
    assert err.value.limit == "speech_queue"
    assert m.speech_queued_samples == 2000 and m.speech_space_samples == 400
    run(m, 1)
    m.push_speech(np.zeros(880, np.int16), "a")
    assert m.speech_queued_samples == 2400


def ends_softly(pcm: np.ndarray) -> np.ndarray:
    """Speech as TTS gives it: ending in silence (20 ms fade), so only an underrun could click."""
    gain = np.ones(pcm.size)
    gain[-480:] = np.linspace(1.0, 0.0, 480)
    return np.rint(pcm * gain).astype(np.int16)


def test_speech_that_runs_dry_mid_word_fades_out_and_back_in():
    """TTS late mid-utterance: the output must not stop and restart dead."""
    m = Mixer(RATE)
    speech = ends_softly(voice(1.0))
    cut = int(0.31 * RATE) + 7  # mid-word, mid-frame
    assert abs(int(speech[cut - 1])) > 4 * max_step(speech)  # stopping dead here would click
    m.push_speech(speech[:cut], "a")
    before = [m.mix_frame() for _ in range(20)]  # 0.4 s: runs dry after 0.31 s
    m.push_speech(speech[cut:], "a")
    m.end_speech("a")
    after = [m.mix_frame() for _ in range(40)]
    out = np.concatenate([np.frombuffer(f.pcm, np.int16) for f in before + after])
    assert max_step(out) <= max_step(speech)
    assert any(f.speech_samples == 0 for f in before[-3:])  # a silent gap while it waits
    assert m.played_samples("a") == speech.size  # nothing lost, nothing repeated
    ends = [e for f in after for e in f.ended]
    assert ends == [SpeechEnd("a", speech.size, False)]


def test_speech_arriving_during_the_underrun_fade_comes_back_up_without_a_gap():
    m = Mixer(RATE)
    speech = ends_softly(voice(1.0))
    cut = 15 * FRAME + 600  # after 15 frames, 600 samples left: a frame, but not a frame and the fade
    m.push_speech(speech[:cut], "a")
    frames = []
    while m.speech_queued_samples >= FRAME + RATE // 100:  # the last frame before the fade out begins
        frames.append(m.mix_frame())
    frames.append(m.mix_frame())  # fading out toward the last queued sample
    m.push_speech(speech[cut:], "a")  # in time after all
    m.end_speech("a")
    frames += [m.mix_frame() for _ in range(40)]
    out = np.concatenate([np.frombuffer(f.pcm, np.int16) for f in frames])
    assert max_step(out) <= max_step(speech)
    spoken = [f.speech_samples for f in frames if f.speech_samples]
    assert sum(spoken) == speech.size and all(n == FRAME for n in spoken[:-1])  # never silent in between


def test_after_an_underrun_the_next_utterance_starts_at_once_at_full_level():
    m = Mixer(RATE)
    m.push_speech(ends_softly(voice(0.1)), "a")  # never ended: as the engine leaves its utterances
    run(m, 8)  # "a" ran dry: an underrun as far as the mixer knows
    short = voice(0.01, seed=3)  # less than a frame plus the fade: it would wait, were it more of "a"
    m.push_speech(short, "b")
    m.end_speech("b")
    first = m.mix_frame()
    assert first.speech == (("b", short.size),)
    assert np.array_equal(np.frombuffer(first.pcm, np.int16)[: short.size], short)


def test_a_starved_utterance_plays_a_last_small_piece_without_waiting_forever():
    m = Mixer(RATE)
    speech = ends_softly(voice(0.1))
    m.push_speech(speech, "a")
    run(m, 8)
    m.push_speech(voice(0.0003, seed=4), "a")  # 7 samples, and never anything more nor an end
    frames = [m.mix_frame() for _ in range(5)]
    assert m.played_samples("a") == speech.size + 7 and sum(f.speech_samples for f in frames) == 7


def test_ring_buffer_wraps_without_corrupting_speech():
    m = Mixer(RATE, speech_limit_ms=50)  # 1200 samples
    speech = voice(1.0)
    out, pos = [], 0
    while pos < speech.size:
        while m.speech_space_samples and pos < speech.size:  # kept full: no underrun
            n = min(m.speech_space_samples, 700, speech.size - pos)
            m.push_speech(speech[pos : pos + n], "a")
            pos += n
        out.append(run(m, 1))
    m.end_speech("a")
    out.append(run(m, 3))
    joined = np.concatenate(out)
    assert np.array_equal(joined[: speech.size], speech)


def test_playback_mode_replaces_speech_until_the_layer_stops():
    m = Mixer(RATE)
    hold_music = clip_from_pcm(np.rint(tone(440.0, RATE, 0.5) * 8000).astype(np.int16), RATE, 1, RATE)
    m.play_layer("background", hold_music, gain=1.0, mode="playback", fade_in_ms=50, fade_out_ms=50)
    m.push_speech(voice(1.0), "a")
    during = [m.mix_frame() for _ in range(10)]
    assert all(f.speech_samples == 0 for f in during)
    assert m.speech_queued_samples == RATE and m.speech_paused
    m.stop_layer("background")
    after = [m.mix_frame() for _ in range(10)]
    assert all(f.speech_samples == FRAME for f in after)
    out = np.concatenate([np.frombuffer(f.pcm, np.int16) for f in during + after])
    assert max_step(out) <= max(max_step(voice(1.0)), max_step(hold_music.pcm))


@pytest.mark.parametrize("db", [6.0, 20.0])
def test_background_ducks_smoothly_under_speech(db):
    m = Mixer(RATE)
    bg = clip_from_pcm(np.rint(tone(300.0, RATE, 0.1) * 10000).astype(np.int16), RATE, 1, RATE)
    m.play_layer("background", bg, gain=1.0, fade_in_ms=0)
    m.set_ducking(db, attack_ms=100, release_ms=300)
    alone = run(m, 10)
    m.push_speech(np.zeros(RATE, np.int16), "a")  # silent speech: only the duck is heard
    m.end_speech("a")
    ducked = run(m, 50)
    released = run(m, 30)
    rms = lambda x: np.sqrt(np.mean(x.astype(float) ** 2))  # noqa: E731
    assert rms(ducked[-4800:]) / rms(alone) == pytest.approx(10 ** (-db / 20), rel=0.02)
    assert rms(released[-4800:]) == pytest.approx(rms(alone), rel=0.01)
    out = np.concatenate([alone, ducked, released])
    assert max_step(out) <= max_step(bg.pcm) + 1


def test_thinking_is_not_ducked():
    m = Mixer(RATE)
    th = load_clip("builtin:thinking", RATE)
    m.play_layer("thinking", th, gain=1.0, fade_in_ms=0)
    m.set_ducking(20.0)
    m.push_speech(np.zeros(RATE, np.int16), "a")
    assert np.array_equal(run(m, 10), np.resize(th.pcm, 10 * FRAME))


def test_replacing_a_layer_crossfades():
    m = Mixer(RATE)
    first = load_clip("builtin:ambience", RATE)
    second = clip_from_pcm(np.rint(tone(220.0, RATE, 0.5) * 6000).astype(np.int16), RATE, 1, RATE)
    m.play_layer("background", first, gain=1.0, fade_in_ms=0)
    before = run(m, 5)
    m.play_layer("background", second, gain=1.0, fade_in_ms=200)
    after = run(m, 30)
    assert max_step(np.concatenate([before, after])) <= max(max_step(first.pcm), max_step(second.pcm))
    assert np.array_equal(after[-FRAME:], np.resize(second.pcm, after.size)[-FRAME:])
    m.stop_layer("background", 0)
    assert not m.layer_playing("background")


def test_stereo_speech_and_layers():
    m = Mixer(48000, channels=2)
    left = np.arange(960, dtype=np.int16)
    speech = np.stack([left, -left], axis=1).reshape(-1)
    m.push_speech(speech, "s")
    m.end_speech("s")
    bg = load_clip("builtin:ambience", 48000, channels=2)
    m.play_layer("background", bg, gain=0.5, fade_in_ms=0)
    out = run(m, 1).reshape(-1, 2)
    ref = speech.reshape(-1, 2) + np.rint(bg.pcm.reshape(-1, 2)[:960] * 0.5)
    assert np.max(np.abs(out - ref)) <= 1
    assert m.frame_samples == 960 and len(m.mix_frame().pcm) == 960 * 2 * 2


def test_one_shot_layer_ends_by_itself():
    m = Mixer(RATE)
    clip = clip_from_pcm(np.full(700, 1000, np.int16), RATE, 1, RATE)
    m.play_layer("thinking", clip, gain=1.0, looping=False, fade_in_ms=0)
    out = run(m, 3)
    assert np.all(out[:700] == 1000) and not out[700:].any()
    assert not m.layer_playing("thinking")


def test_bad_arguments_raise_invalid_argument():
    m = Mixer(RATE)
    clip = load_clip("builtin:thinking", RATE)
    bad = [
        (lambda: m.play_layer("background", clip, gain=2.5), "layer.gain"),
        (lambda: m.play_layer("background", clip, gain=-0.1), "layer.gain"),
        (lambda: m.play_layer("background", clip, mode="solo"), "layer.mode"),
        (lambda: m.play_layer("music", clip), "layer"),
        (lambda: m.play_layer("background", load_clip("builtin:thinking", 16000)), "layer.source"),
        (lambda: m.push_speech(b"\x00\x01\x02", "a"), "pcm"),
        (lambda: m.push_speech(np.zeros(4, np.float32), "a"), "pcm"),
        (lambda: m.set_ducking(50.0), "duck_db"),
        (lambda: m.stop_layer("thinking", -1), "fade_ms"),
        (lambda: Mixer(44100, frame_ms=15), "frame_ms"),
    ]
    for call, field in bad:
        with pytest.raises(InvalidArgument) as err:
            call()
        assert err.value.field == field


def test_late_audio_for_an_interrupted_utterance_is_discarded():
    m = Mixer(RATE)
    m.push_speech(voice(0.5), "a")
    m.push_speech(voice(0.5), "b")
    run(m, 3)
    played = m.interrupt(0)
    assert played == 3 * FRAME
    assert m.push_speech(voice(0.1), "a") is False
    assert m.push_speech(voice(0.1), "b") is False
    m.end_speech("a")
    ends = [e for f in (m.mix_frame() for _ in range(3)) for e in f.ended]
    assert ends == [SpeechEnd("b", 0, True), SpeechEnd("a", played, True)]
    assert m.speech_queued_samples == 0 and m.played_samples("a") == played
    assert m.push_speech(voice(0.1), "c") is True


@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("sound", ["builtin:ambience", "builtin:thinking"])
def test_stopping_a_built_in_sound_never_steps_more_than_the_sound_itself(rate, sound):
    clip = load_clip(sound, rate)
    for frames_before in (3, 17, 101):
        m = Mixer(rate)
        m.play_layer("background", clip, gain=1.0)  # default 100 ms fade in
        before = run(m, frames_before)
        m.stop_layer("background")  # default 400 ms fade out
        after = run(m, 25)
        assert max_step(np.concatenate([before, after])) <= max_step(clip.pcm)
        assert not after[-m.frame_samples :].any() and not m.layer_playing("background")


@pytest.mark.parametrize("end", ["interrupt", "interrupt_all", "drop_tag", "played_out"])
def test_a_pause_ends_with_the_utterance_it_holds(end):
    """Speech after the paused utterance plays: a pause never outlives what it paused."""
    m = Mixer(RATE)
    m.push_speech(voice(0.5 if end != "played_out" else 0.21), "a")
    run(m, 10)
    m.pause_speech(100)
    run(m, 10)
    if end == "interrupt":
        m.interrupt(20, "current")
    elif end == "interrupt_all":
        m.interrupt(20, "all")
    elif end == "drop_tag":
        m.drop_tag("a", 20)
    else:
        m.end_speech("a")  # its last 10 ms played out inside the pause's fade
    run(m, 2)
    assert m.played_samples("a") > 0 and not m.speech_paused
    after = voice(0.2, seed=2)
    m.push_speech(after, "b")
    frames = [m.mix_frame() for _ in range(12)]
    assert sum(f.speech_samples for f in frames) == after.size
    assert m.played_samples("b") == after.size
