// The agent's audio through a small jitter buffer: 16-bit PCM frames at the
// stream's output rate in, resampled to the audio clock's rate. Playing starts
// once `targetMs` are buffered and stops (an underrun) when the buffer runs
// dry; more than `maxMs` buffered drops the oldest audio. "clear" empties it
// (the agent was interrupted). It posts "voice" with the audio-clock time when
// the output turns audible after 300 ms of quiet, and "stats" four times a second.
import { Resampler } from './resampler.js';

const AUDIBLE = 0.01; // peak, -40 dBFS
const QUIET_BEFORE_VOICE_S = 0.3;

class Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { sourceRate, targetMs, maxMs } = options.processorOptions;
    this.resampler = new Resampler(sourceRate, sampleRate);
    this.target = Math.round((targetMs / 1000) * sampleRate);
    this.ring = new Float32Array(Math.round((maxMs / 1000) * sampleRate));
    this.start = 0;
    this.size = 0;
    this.playing = false;
    this.underruns = 0;
    this.dropped = 0;
    this.quiet = Infinity; // samples of quiet output so far
    this.sinceStats = 0;
    this.port.onmessage = (event) => {
      if (event.data.type === 'frame') this.push(new Int16Array(event.data.pcm));
      else if (event.data.type === 'clear') this.clear();
    };
  }

  push(pcm) {
    const floats = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i += 1) floats[i] = pcm[i] / 32768;
    const capacity = this.ring.length;
    for (const sample of this.resampler.push(floats)) {
      if (this.size === capacity) { // full: the oldest sample goes
        this.start = (this.start + 1) % capacity;
        this.size -= 1;
        this.dropped += 1;
      }
      this.ring[(this.start + this.size) % capacity] = sample;
      this.size += 1;
    }
  }

  clear() {
    this.start = 0;
    this.size = 0;
    this.playing = false;
    this.resampler.reset();
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.size >= this.target) this.playing = true;
    let written = 0;
    let peak = 0;
    if (this.playing) {
      written = Math.min(out.length, this.size);
      for (let i = 0; i < written; i += 1) {
        const v = this.ring[(this.start + i) % this.ring.length];
        out[i] = v;
        peak = Math.max(peak, Math.abs(v));
      }
      this.start = (this.start + written) % this.ring.length;
      this.size -= written;
      if (written < out.length) {
        this.playing = false;
        this.underruns += 1;
      }
    }
    out.fill(0, written);
    for (let c = 1; c < outputs[0].length; c += 1) outputs[0][c].set(out);

    if (peak >= AUDIBLE) {
      if (this.quiet >= QUIET_BEFORE_VOICE_S * sampleRate) this.port.postMessage({ type: 'voice', time: currentTime });
      this.quiet = 0;
    } else {
      this.quiet += out.length;
    }
    this.sinceStats += out.length;
    if (this.sinceStats >= sampleRate / 4) {
      this.sinceStats = 0;
      this.port.postMessage({
        type: 'stats', bufferedMs: (this.size / sampleRate) * 1000, underruns: this.underruns, dropped: this.dropped,
      });
    }
    return true;
  }
}

registerProcessor('parley-playback', Playback);
