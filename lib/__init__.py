"""The ground floor: what every layer above may use and nothing here knows of them.

Kafka client and consumer loop (``lib.kafka``), database connections outside the ORM
(``lib.db``), rate limits (``lib.ratelimit``), settings helpers (``lib.env``).
"""
