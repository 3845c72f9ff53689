"""Knowledge bases: documents an agent can search while it talks."""
