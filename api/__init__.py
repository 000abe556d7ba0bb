"""The monitoring centre's HTTP API (`carewatch api`): FastAPI under /api/v1.

Users with roles and areas (`users.py`), the audit trail (`audit.py`), and routes per
resource (`routes/`), each thin: validate, check the user's role and area, call the store
of the package that owns the data (`alerts.store`, `alerts.views`, ...), shape the answer.
`app.create_app` puts it together; carewatch/processes.py runs it as a process.
"""
