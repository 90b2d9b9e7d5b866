// The microphone, resampled to the stream's input rate and cut into 20 ms
// chunks of 16-bit PCM, each posted with its level (RMS, 0..1) and the
// audio-clock time of its end.
import { Resampler } from './resampler.js';

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkMs } = options.processorOptions;
    this.resampler = new Resampler(sampleRate, targetRate);
    this.chunk = new Float32Array(Math.round((targetRate * chunkMs) / 1000));
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected (yet)
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(mono.length);
      for (const channel of channels) for (let i = 0; i < mono.length; i += 1) mono[i] += channel[i] / channels.length;
    }
    for (const sample of this.resampler.push(mono)) {
      this.chunk[this.filled] = sample;
      this.filled += 1;
      if (this.filled === this.chunk.length) this.emit();
    }
    return true;
  }

  emit() {
    const pcm = new Int16Array(this.chunk.length);
    let energy = 0;
    for (let i = 0; i < pcm.length; i += 1) {
      const v = Math.max(-1, Math.min(1, this.chunk[i]));
      pcm[i] = Math.round(v * 32767);
      energy += v * v;
    }
    this.filled = 0;
    this.port.postMessage({ pcm: pcm.buffer, rms: Math.sqrt(energy / pcm.length), time: currentTime }, [pcm.buffer]);
  }
}

registerProcessor('parley-capture', Capture);
