"""Provider usage reports as the vendors send them, for pricing tests and benches."""

from __future__ import annotations

from typing import Any

#: A GA Realtime ``response.done`` usage block (numbers from a real report,
#: community.openai.com/t/1060242): cached tokens are part of their modality's count.
OPENAI_RESPONSE_USAGE: dict[str, Any] = {
    "total_tokens": 821, "input_tokens": 789, "output_tokens": 32,
    "input_token_details": {
        "text_tokens": 313, "audio_tokens": 476, "image_tokens": 0, "cached_tokens": 640,
        "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
}

#: A Gemini Live ``usageMetadata`` as sent on the wire (camelCase), with thinking tokens
#: and 25 prompt tokens that carry no modality (discuss.ai.google.dev/t/188765).
GEMINI_WIRE_USAGE: dict[str, Any] = {
    "promptTokenCount": 522, "responseTokenCount": 42, "totalTokenCount": 564, "thoughtsTokenCount": 136,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 332}, {"modality": "AUDIO", "tokenCount": 165}],
    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 42}],
}
