// "Talk to this agent" through a LiveKit room: the page joins the room the platform made
// (data-url, data-token: a token for this room only, minted by calls.services.livekit),
// publishes the microphone and plays the agent's audio track. The agent is a participant
// of the same room (calls.media.livekit_transport); the call completes when this browser
// leaves the room. States are honest: connecting → live (the agent's audio is subscribed)
// → ended (you hung up, or the agent left) or failed (never green). The live transcript
// and the call's status are polled from the server (htmx, #lk-call-live).
// Uses the vendored livekit-client (static/vendor/livekit-client, global LivekitClient).
(function () {
  "use strict";
  const root = document.getElementById("lk-call");
  if (!root || !window.LivekitClient) return;
  const LK = window.LivekitClient;
  const $ = (id) => document.getElementById(id);
  const statusEl = $("lk-call-status");
  const agentEl = $("lk-call-agent");
  const muteButton = $("lk-call-mute");
  const hangupButton = $("lk-call-hangup");
  const outcomeEl = $("lk-call-outcome");
  const audioBox = $("lk-call-audio");
  const levelEl = $("lk-call-agent-level");
  const room = new LK.Room({ adaptiveStream: false, dynacast: false });
  let finished = false;
  let hangingUp = false;
  let muted = false;
  let live = false;
  let joined = false; // until then a failure is the join's (reported by connect())
  let meter = null; // {context, frame}: the agent's voice level, from the decoded track

  function showAgentLevel(mediaStreamTrack) {
    // What this browser really receives: the level of the agent's decoded audio.
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(new MediaStream([mediaStreamTrack])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    meter = { context: context, frame: 0 };
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
      levelEl.value = Math.min(1, peak);
      if (peak > 0.05) levelEl.dataset.heard = "yes";
      meter.frame = requestAnimationFrame(tick);
    };
    tick();
    if (context.state === "suspended") document.addEventListener("click", () => context.resume(), { once: true });
  }

  function setStatus(text, tone) {
    statusEl.textContent = text;
    statusEl.className = "badge" + (tone ? " " + tone : "");
  }

  function finish(failed, text, reason) {
    if (finished) return;
    finished = true;
    if (meter) { cancelAnimationFrame(meter.frame); meter.context.close(); }
    levelEl.value = 0;
    setStatus(failed ? "failed" : "ended", failed ? "bad" : "");
    agentEl.textContent = "Call over";
    muteButton.disabled = true;
    hangupButton.disabled = true;
    levelEl.closest("p").hidden = true;
    muteButton.closest("p").hidden = true;
    outcomeEl.dataset.reason = reason;
    outcomeEl.textContent = text;
    outcomeEl.className = "msg " + (failed ? "error" : "success");
    outcomeEl.hidden = false;
    $("lk-call-details").classList.add("button");
  }

  room.on(LK.RoomEvent.TrackSubscribed, (track, publication, participant) => {
    if (track.kind !== LK.Track.Kind.Audio) return;
    const element = track.attach();
    element.id = "lk-agent-audio";
    audioBox.appendChild(element);
    agentEl.dataset.heard = "yes";
    showAgentLevel(track.mediaStreamTrack);
    agentEl.textContent = "Agent connected: you hear " + (participant.name || participant.identity);
    live = true;
    if (!finished) setStatus("live", "ok");
  });
  room.on(LK.RoomEvent.TrackUnsubscribed, (track) => { track.detach().forEach((el) => el.remove()); });
  room.on(LK.RoomEvent.ParticipantConnected, (participant) => {
    agentEl.textContent = "Agent joined: " + (participant.name || participant.identity);
  });
  room.on(LK.RoomEvent.ParticipantDisconnected, () => {
    // The agent is the only other participant: it left, so the call is over; leave too.
    hangingUp = true;
    finish(false, "Ended: the agent left the room.", "agent_left");
    room.disconnect();
  });
  room.on(LK.RoomEvent.ActiveSpeakersChanged, (speakers) => {
    if (finished) return;
    const agent = speakers.some((p) => p !== room.localParticipant);
    const caller = speakers.includes(room.localParticipant);
    agentEl.dataset.who = agent && caller ? "both" : agent ? "agent" : caller ? "caller" : "none";
  });
  room.on(LK.RoomEvent.AudioPlaybackStatusChanged, () => {
    if (room.canPlaybackAudio || finished) return;
    setStatus("click the page to start audio", "warn");
    document.addEventListener("click", () => room.startAudio(), { once: true });
  });
  room.on(LK.RoomEvent.Disconnected, (reason) => {
    if (!joined) return;
    const why = (LK.DisconnectReason && LK.DisconnectReason[reason]) || reason;
    if (hangingUp) finish(false, outcomeEl.hidden ? "Ended: you hung up." : outcomeEl.textContent, "caller_hangup");
    else finish(true, "Failed: the connection to the LiveKit server was lost (" + why + ").", "disconnected:" + why);
  });

  muteButton.addEventListener("click", async () => {
    muted = !muted;
    await room.localParticipant.setMicrophoneEnabled(!muted);
    muteButton.setAttribute("aria-pressed", String(muted));
    muteButton.textContent = muted ? "Unmute" : "Mute";
  });

  hangupButton.addEventListener("click", () => {
    hangingUp = true;
    hangupButton.disabled = true;
    setStatus("hanging up…");
    room.disconnect(); // leaving the room ends the call on the server
  });

  window.addEventListener("pagehide", () => { hangingUp = true; room.disconnect(); });

  (async function join() {
    try {
      await room.connect(root.dataset.url, root.dataset.token);
      joined = true;
      if (!live) setStatus("connected: waiting for the agent's audio", "warn");
      await room.localParticipant.setMicrophoneEnabled(true);
      muteButton.disabled = false;
    } catch (err) {
      hangingUp = false;
      const text = err && err.name === "NotAllowedError"
        ? "Failed: the microphone could not be opened. Allow it for this site and start a new call."
        : "Failed: could not join the LiveKit room (" + (err && err.message ? err.message : err) + ").";
      finish(true, text, "join_failed");
      room.disconnect();
    }
  })();
})();
