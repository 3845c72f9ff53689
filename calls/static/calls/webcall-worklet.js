// AudioWorklet for "Talk to this agent": runs on the audio thread, turns the microphone
// into 20 ms PCM16 frames (the size carriers use) and measures their level for the meter.
// Posts {pcm: ArrayBuffer (transferred), level: 0..1} to the page; the page sends `pcm`
// on the call's socket. `{muted: true}` from the page makes the frames silent (the call
// keeps receiving audio, so it is not taken for a dead line) and the level 0.
/* global sampleRate, registerProcessor, AudioWorkletProcessor */
class Pcm16Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 50);
    this.frame = new Int16Array(this.size);
    this.filled = 0;
    this.sumSquares = 0;
    this.muted = false;
    this.port.onmessage = (event) => { this.muted = Boolean(event.data && event.data.muted); };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true; // no input yet (the microphone is still starting)
    for (let i = 0; i < channel.length; i++) {
      const v = this.muted ? 0 : Math.max(-1, Math.min(1, channel[i]));
      this.sumSquares += v * v;
      this.frame[this.filled++] = v < 0 ? v * 32768 : v * 32767;
      if (this.filled === this.size) this.flush();
    }
    return true;
  }

  flush() {
    const rms = Math.sqrt(this.sumSquares / this.size);
    // -60 dBFS .. 0 dBFS onto 0..1: speech sits in the middle of the meter
    const level = rms > 0 ? Math.max(0, Math.min(1, (20 * Math.log10(rms) + 60) / 60)) : 0;
    const pcm = this.frame.buffer;
    this.port.postMessage({ pcm: pcm, level: level }, [pcm]);
    this.frame = new Int16Array(this.size); // the old one went to the page with its buffer
    this.filled = 0;
    this.sumSquares = 0;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
