"""Container lifecycle events (GetContainerEvents, kubelet's evented PLEG)."""

from cri.events.broker import (
    CREATED,
    DELETED,
    STARTED,
    STOPPED,
    EventBroker,
    EventKind,
    LifecycleEvent,
    Overflowed,
    Subscription,
)

__all__ = ["CREATED", "DELETED", "STARTED", "STOPPED", "EventBroker", "EventKind",
           "LifecycleEvent", "Overflowed", "Subscription"]
