"""The notifier: every alert reaches a person who answers.

Stages, one job each (as Alertmanager's notify pipeline does it):

    decide   escalation.py  which step of whose policy is due; writes its notifications
    dedup                   a notification's id is derived from what it is for, so
                            deciding twice inserts it once (the outbox table's key)
    wait     delivery.py    quiet hours and retry backoff are a row's `due_at`
    send     channels/      one integration per channel type, no retries inside
    record   store.py       the notification log: delivered / accepted / declined /
                            no answer / failed, per alert

Time is injected (`Clock`), so escalation waits are tested in milliseconds.
"""
