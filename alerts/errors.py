"""Errors raised by `alerts`.

AlertError                  root of everything this package raises; the message says
│                           what was refused and why, fit to show an operator
├── AlertNotFound           no alert has that id
├── WorkOrderNotFound       no work order has that id
└── AlertStateError         the change does not fit the alert's status (acknowledging
                            or resolving a resolved alert), or lacks what it needs
                            (who did it, a resolution note), or a work order's
                            step comes out of order
"""

from __future__ import annotations

__all__ = ["AlertError", "AlertNotFound", "AlertStateError", "WorkOrderNotFound"]


class AlertError(Exception):
    """Root of the exceptions raised by `alerts`."""

    retriable = False


class AlertNotFound(AlertError):
    """No alert has the id asked for."""

    def __init__(self, alert_id: int) -> None:
        super().__init__(f"no alert {alert_id}")
        self.alert_id = alert_id


class WorkOrderNotFound(AlertError):
    """No work order has the id asked for."""

    def __init__(self, order_id: int) -> None:
        super().__init__(f"no work order {order_id}")
        self.order_id = order_id


class AlertStateError(AlertError):
    """An operator change that the alert's status (or the request itself) does not allow."""
