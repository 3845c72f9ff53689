// "Talk to this agent": microphone → PCM16 16 kHz over the call's WebSocket (captured by an
// AudioWorklet, webcall-worklet.js), agent PCM16 16 kHz played back, playback marks
// acknowledged when heard, `clear` honoured (barge-in). The same socket carries the
// session's JSON updates next to the audio: `transcript`/`transcript_delta` lines,
// `speaking` ({who, speaking}) and, last, `ended` ({reason, error}), so the screen shows
// the live transcript, who speaks now and how the call really ended.
// The call's token goes in the first message ({"event": "start", "token": …}), never
// in the socket URL (servers log URLs). The microphone is asked for first, so the
// socket opens only once there is audio to send.
(function () {
  "use strict";
  const root = document.getElementById("web-call");
  if (!root) return;
  const RATE = 16000;
  const $ = (id) => document.getElementById(id);
  const statusEl = $("web-call-status");
  const speakingEl = $("web-call-speaking");
  const timerEl = $("web-call-timer");
  const levelEl = $("web-call-level");
  const mutedNote = $("web-call-muted");
  const muteButton = $("web-call-mute");
  const hangupButton = $("web-call-hangup");
  const outcomeEl = $("web-call-outcome");
  const transcriptEl = $("web-call-transcript");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ROLES = { agent: "Agent", caller: "You" };
  // [failed?, what the person at the microphone is told]; reasons from calls.media.result
  const ENDINGS = {
    caller_hangup: [false, "Ended: the call was hung up from this browser."],
    agent_hangup: [false, "Ended: the agent ended the call."],
    transferred: [false, "Ended: the agent transferred the call."],
    max_duration: [false, "Ended: the call reached the agent's maximum duration."],
    silence_timeout: [false, "Ended: nobody spoke for the agent's silence timeout."],
    stream_elsewhere: [false, "Ended: this call's audio is connected in another tab."],
    media_timeout: [true, "Failed: no audio arrived from this browser."],
    stream_timeout: [true, "Failed: the audio did not connect in time."],
    provider_error: [true, "Failed: the AI provider returned an error."],
    protocol_error: [true, "Failed: the server could not read this browser's audio."],
    setup_error: [true, "Failed: the call could not be set up."],
    internal_error: [true, "Failed: an internal error ended the call."],
  };
  let socket = null;
  let audio = null;
  let micStream = null;
  let capture = null;
  let playhead = 0; // AudioContext time when queued agent audio ends
  let sources = [];
  let markTimers = [];
  let muted = false;
  let startedAt = null;
  let timer = null;
  let ended = null; // the server's {reason, error}
  let hangingUp = false;
  let finished = false;
  const speaking = { agent: false, caller: false };
  const partial = { agent: null, caller: null };

  function setStatus(text, tone) {
    statusEl.textContent = text;
    statusEl.className = "badge" + (tone ? " " + tone : "");
  }

  function showSpeaking() {
    let who = "none";
    let text = "Listening: the agent is waiting for you";
    if (speaking.agent && speaking.caller) { who = "both"; text = "You and the agent are both speaking"; }
    else if (speaking.agent) { who = "agent"; text = "Agent speaking"; }
    else if (speaking.caller) { who = "caller"; text = "You are speaking"; }
    speakingEl.dataset.who = who;
    speakingEl.textContent = text;
  }

  function showTime() {
    const seconds = Math.floor((performance.now() - startedAt) / 1000);
    timerEl.textContent = Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
    timerEl.setAttribute("datetime", "PT" + seconds + "S");
  }

  function addLine(role, text, final) {
    const empty = $("web-call-transcript-empty");
    if (empty) empty.remove();
    let line = partial[role];
    if (!line) {
      line = document.createElement("p");
      line.className = "wc-line wc-" + (ROLES[role] ? role : "other");
      const who = document.createElement("strong");
      who.textContent = (ROLES[role] || role) + ": ";
      line.appendChild(who);
      line.appendChild(document.createElement("span"));
      transcriptEl.appendChild(line);
    }
    const body = line.lastChild;
    if (final) {
      body.textContent = text;
      line.classList.remove("wc-partial");
      partial[role] = null;
    } else {
      body.textContent += text;
      line.classList.add("wc-partial");
      partial[role] = line;
    }
    transcriptEl.scrollTop = transcriptEl.scrollHeight;
  }

  function play(buffer) {
    const samples = new Int16Array(buffer);
    if (!samples.length) return;
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
    await audio.audioWorklet.addModule(root.dataset.workletUrl);
    micStream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    const input = audio.createMediaStreamSource(micStream);
    capture = new AudioWorkletNode(audio, "pcm16-capture", { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
    capture.port.onmessage = (event) => {
      levelEl.value = muted ? 0 : event.data.level;
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(event.data.pcm);
    };
    input.connect(capture);
    capture.connect(audio.destination); // the node writes silence; connected so it is rendered
    if (audio.state === "suspended") await resumeAudio();
  }

  function resumeAudio() {
    // Browsers may start audio suspended until the page is clicked: say so, resume on a click.
    return audio.resume().then(() => {
      if (audio.state !== "suspended") return;
      setStatus("click the page to start audio", "warn");
      return new Promise((resolve) => {
        document.addEventListener("click", () => audio.resume().then(resolve), { once: true });
      });
    });
  }

  function stopMicrophone() {
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    if (audio && audio.state !== "closed") audio.close();
  }

  function onMessage(event) {
    if (typeof event.data !== "string") { play(event.data); return; }
    const message = JSON.parse(event.data);
    switch (message.event) {
      case "mark": ackMarkWhenHeard(message.name); break;
      case "clear": clearPlayback(); break;
      case "transcript": addLine(message.role, message.text, true); break;
      case "transcript_delta": addLine(message.role, message.text, false); break;
      case "speaking":
        if (message.who in speaking) { speaking[message.who] = Boolean(message.speaking); showSpeaking(); }
        break;
      case "ended": ended = { reason: message.reason, error: message.error }; break;
      default: break; // timeline events: the call page shows them
    }
  }

  function describeEnd(code) {
    if (ended) {
      const known = ENDINGS[ended.reason] || [true, "Ended (" + ended.reason + ")."];
      const text = known[1] + (ended.error ? " " + ended.error : "");
      return [known[0], hangingUp && ended.reason === "caller_hangup" ? "Ended: you hung up." : text];
    }
    if (code === 4403) return [true, "Refused: this call is open in another tab or has already ended."];
    if (hangingUp) return [false, "Ended: you hung up."];
    return [true, "Failed: the connection to the server closed unexpectedly (code " + code + ")."];
  }

  function finish(code) {
    if (finished) return;
    finished = true;
    if (timer) clearInterval(timer);
    stopMicrophone();
    const [failed, text] = describeEnd(code);
    setStatus(failed ? "failed" : "ended", failed ? "bad" : "");
    speaking.agent = speaking.caller = false;
    speakingEl.dataset.who = "none";
    speakingEl.textContent = "Call over";
    levelEl.value = 0;
    muteButton.disabled = true;
    hangupButton.disabled = true;
    levelEl.closest("p").hidden = true;
    muteButton.closest("p").hidden = true;
    outcomeEl.dataset.reason = ended ? ended.reason : "closed:" + code;
    outcomeEl.textContent = text;
    outcomeEl.className = "msg " + (failed ? "error" : "success");
    outcomeEl.hidden = false;
    $("web-call-details").classList.add("button");
  }

  function connect() {
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      send({ event: "start", sampleRate: RATE, token: root.dataset.streamToken });
      setStatus("connected", "ok");
      startedAt = performance.now();
      timer = setInterval(showTime, 250);
      showSpeaking();
    };
    socket.onmessage = onMessage;
    socket.onclose = (event) => finish(event.code);
  }

  muteButton.addEventListener("click", () => {
    muted = !muted;
    if (capture) capture.port.postMessage({ muted: muted });
    muteButton.setAttribute("aria-pressed", String(muted));
    muteButton.textContent = muted ? "Unmute" : "Mute";
    mutedNote.hidden = !muted;
    if (muted) levelEl.value = 0;
  });

  hangupButton.addEventListener("click", () => {
    hangingUp = true;
    hangupButton.disabled = true;
    if (socket && socket.readyState === WebSocket.OPEN) {
      setStatus("hanging up…");
      send({ event: "stop" }); // the server ends the call, says how, then closes
      setTimeout(() => { if (socket.readyState !== WebSocket.CLOSED) socket.close(); }, 5000);
    } else {
      if (socket) socket.close();
      finish(1000);
    }
  });

  startMicrophone().then(connect, (err) => {
    stopMicrophone();
    setStatus("microphone unavailable", "bad");
    outcomeEl.textContent = "Failed: the microphone could not be opened (" + err.message + "). Allow it for this site and start a new call.";
    outcomeEl.className = "msg error";
    outcomeEl.hidden = false;
    muteButton.disabled = true;
    hangupButton.disabled = true;
  });
})();
