"""The operator console: pages for the monitoring centre, served by the API's process.

Server-rendered (Jinja2) pages updated by htmx and the API's Server-Sent Events; every
action is a call to the API's own routes (with the session cookie instead of a bearer
token), so the console can do nothing the API would not allow.
"""
