"""Media streams: pure carrier serializers, our frame types, and the call session
that joins a carrier (or browser) stream to an AI-provider bridge."""
