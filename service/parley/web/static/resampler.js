// Streaming sample-rate conversion for the audio worklets: a windowed-sinc
// interpolator (Hann window, 16 taps each side, 256 fractional phases),
// low-passed below the lower rate's Nyquist so that downsampling does not alias.
const PHASES = 256;

export class Resampler {
  constructor(fromRate, toRate, halfTaps = 16) {
    this.same = fromRate === toRate;
    this.step = fromRate / toRate; // source samples per output sample
    this.half = halfTaps;
    this.table = Resampler.kernel(Math.min(1, toRate / fromRate) * 0.9, halfTaps);
    this.reset();
  }

  // One row of 2 * half weights per phase (PHASES + 1 rows), each row summing to 1.
  static kernel(cutoff, half) {
    const rows = [];
    for (let p = 0; p <= PHASES; p += 1) {
      const frac = p / PHASES;
      const row = new Float32Array(2 * half);
      let sum = 0;
      for (let k = 0; k < 2 * half; k += 1) {
        const x = k - half + 1 - frac; // distance from the output instant, in source samples
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * cutoff * x) / (Math.PI * cutoff * x);
        const window = Math.abs(x) >= half ? 0 : 0.5 * (1 + Math.cos((Math.PI * x) / half));
        row[k] = sinc * window;
        sum += row[k];
      }
      for (let k = 0; k < 2 * half; k += 1) row[k] /= sum;
      rows.push(row);
    }
    return rows;
  }

  reset() {
    this.history = new Float32Array(0);
    this.position = 0; // of the next output sample, in indices of history + input
  }

  // Float32 samples at fromRate in; Float32 samples at toRate out (as many as the input allows).
  push(input) {
    if (this.same) return Float32Array.from(input);
    const buffer = new Float32Array(this.history.length + input.length);
    buffer.set(this.history);
    buffer.set(input, this.history.length);
    const out = [];
    const taps = 2 * this.half;
    while (Math.floor(this.position) + this.half < buffer.length) {
      const center = Math.floor(this.position);
      const row = this.table[Math.round((this.position - center) * PHASES)];
      const first = center - this.half + 1;
      let sum = 0;
      for (let k = Math.max(0, -first); k < taps; k += 1) sum += buffer[first + k] * row[k];
      out.push(sum);
      this.position += this.step;
    }
    const keep = Math.max(0, Math.floor(this.position) - this.half + 1);
    this.history = buffer.slice(keep);
    this.position -= keep;
    return Float32Array.from(out);
  }
}
