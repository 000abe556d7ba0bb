"""The API's routes, one module per resource; each thin (validate, check, call a store).

Each router carries the whole prefix itself, so a route's path template is the URL's
(the request metrics are labelled with it).
"""

API_PREFIX = "/api/v1"
