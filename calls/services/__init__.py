"""State changes of calls and phone numbers (DESIGN.md convention 1), one module per job.

Import from the module that does the thing; this package re-exports nothing, so a
name's import path says where it lives:

- ``errors``     — ``CallError`` and its kinds (what every service here raises);
- ``placement``  — starting calls: ``place_outbound_call``, ``start_web_call``, the
  do-not-call hook;
- ``lifecycle``  — after the start: ``transition``, ``record_session_result``,
  ``finalize_call``, the expiry of calls nothing else will end;
- ``control``    — acting on a live call: hang up, transfer, DTMF, SMS; ``delete_call``;
- ``transfer``   — warm transfer: dial the human's leg while the caller stays with the agent,
  its callbacks, bridging in a conference, the session's feed of leg changes;
- ``session``    — what the media session runs with (``load_session_context``, its tool
  handlers) and ``prepare_session_early``;
- ``streams``    — media-stream tokens and the one-socket-per-call claim;
- ``costs``      — the carrier's and the AI provider's cost of a call;
- ``numbers``    — the org's phone numbers (add, import from the carrier, edit, delete);
- ``livekit``    — agents in LiveKit rooms: ``start_livekit_call``, ``run_livekit_call``,
  ``dispatch_agent``, the browser's join token, the org's LiveKit server;
- ``livekit_dispatch`` — LiveKit webhooks (signed with the org's key) and the org's
  dispatch rules that send agents into rooms, LiveKit SIP callers included;
- ``timeline``   — ``add_event`` and the live view's feed;
- ``base``       — what they share: ``carrier_for``, ``normalize_number``, async DB access.

Modules depend only downwards in that graph (``calls/tests/test_services_layout.py``
keeps it free of import cycles): errors < base < timeline < streams < control/costs <
transfer < session < lifecycle < placement < livekit < livekit_dispatch; numbers uses only errors and base.
"""
