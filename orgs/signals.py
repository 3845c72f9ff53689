"""``audit_recorded`` fires after the transaction that stored an audit entry commits.

The integrations app listens to it to produce outgoing webhooks.
"""
from django.dispatch import Signal

audit_recorded = Signal()  # kwargs: entry (orgs.models.AuditLog)
