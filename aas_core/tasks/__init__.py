"""Distributed processing: the session's steps as task bodies (``work``), run in this process or
by ``aas worker`` processes through Celery (``app``), chosen by ``AAS_BROKER_URL`` (``dispatch``).

Importing this package does not import Celery; only ``tasks.app`` (and a configured broker) does.
"""
