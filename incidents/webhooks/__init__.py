"""Outgoing webhooks: endpoints an admin registers, an outbox the commands write, a worker that delivers.

A Django app of its own (label `webhooks`) inside the `incidents` package:
the commands write its outbox in their transaction, so it sits below them,
and its migrations stay apart from the incidents app's.
"""
