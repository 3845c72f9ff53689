// "Talk to this agent": microphone → PCM16 16 kHz over the call's WebSocket, agent
// PCM16 16 kHz played back, playback marks acknowledged when heard, `clear` honoured
// (barge-in), and the live transcript from the session's updates.
// The call's token goes in the first message ({"event": "start", "token": …}), never
// in the socket URL (servers log URLs). The microphone is asked for first, so the
// socket opens only once there is audio to send.
(function () {
  "use strict";
  const root = document.getElementById("web-call");
  if (!root) return;
  const RATE = 16000;
  const statusEl = document.getElementById("web-call-status");
  const transcriptEl = document.getElementById("web-call-transcript");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  let socket = null;
  let audio = null;
  let micStream = null;
  let playhead = 0; // AudioContext time when queued agent audio ends
  let sources = [];
  let markTimers = [];

  function setStatus(text) { statusEl.textContent = text; }

  function addLine(role, text) {
    if (transcriptEl.querySelector(".muted")) transcriptEl.innerHTML = "";
    const p = document.createElement("p");
    const who = document.createElement("strong");
    who.textContent = role + ": ";
    p.appendChild(who);
    p.appendChild(document.createTextNode(text));
    transcriptEl.appendChild(p);
  }

  function play(buffer) {
    const samples = new Int16Array(buffer);
    const floats = new Float32Array(samples.length);
    for (let i = 0; i < samples.length; i++) floats[i] = samples[i] / 32768;
    const chunk = audio.createBuffer(1, floats.length, RATE);
    chunk.copyToChannel(floats, 0);
    const source = audio.createBufferSource();
    source.buffer = chunk;
    source.connect(audio.destination);
    playhead = Math.max(playhead, audio.currentTime);
    source.start(playhead);
    playhead += chunk.duration;
    sources.push(source);
    source.onended = () => { sources = sources.filter((s) => s !== source); };
  }

  function clearPlayback() {
    sources.forEach((s) => { try { s.stop(); } catch (e) { /* already stopped */ } });
    sources = [];
    markTimers.forEach(clearTimeout);
    markTimers = [];
    playhead = audio.currentTime;
  }

  function ackMarkWhenHeard(name) {
    const delayMs = Math.max(0, (playhead - audio.currentTime) * 1000);
    markTimers.push(setTimeout(() => send({ event: "mark", name: name }), delayMs));
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  async function startMicrophone() {
    audio = new AudioContext({ sampleRate: RATE });
    micStream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    const input = audio.createMediaStreamSource(micStream);
    // ScriptProcessor keeps this file self-contained; 1024 samples = 64 ms at 16 kHz.
    const processor = audio.createScriptProcessor(1024, 1, 1);
    processor.onaudioprocess = (event) => {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      const data = event.inputBuffer.getChannelData(0);
      const pcm = new Int16Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = Math.max(-1, Math.min(1, data[i]));
        pcm[i] = v < 0 ? v * 32768 : v * 32767;
      }
      socket.send(pcm.buffer);
    };
    input.connect(processor);
    processor.connect(audio.destination);
  }

  function stopMicrophone() {
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    if (audio) audio.close();
  }

  function connect() {
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      send({ event: "start", sampleRate: RATE, token: root.dataset.streamToken });
      setStatus("connected");
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") { play(event.data); return; }
      const message = JSON.parse(event.data);
      if (message.event === "mark") ackMarkWhenHeard(message.name);
      else if (message.event === "clear") clearPlayback();
      else if (message.event === "transcript") addLine(message.role, message.text);
    };
    socket.onclose = (event) => {
      setStatus(event.code === 4403 ? "refused: this call is open elsewhere or has ended" : "call ended");
      stopMicrophone();
    };
  }

  startMicrophone().then(connect, (err) => {
    setStatus("microphone unavailable: " + err.message);
    stopMicrophone();
  });

  document.getElementById("web-call-hangup").addEventListener("click", () => {
    send({ event: "stop" });
    if (socket) socket.close();
    else stopMicrophone();
  });
})();
