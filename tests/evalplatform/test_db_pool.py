"""Database connections stay bounded under a threaded server: 40 raters with keep-alive
connections (each one a server thread) never hold more PostgreSQL connections than the pool's
DB_POOL_MAX_SIZE. Without the pool every server thread kept its own persistent connection and
20 raters exhausted PostgreSQL ("sorry, too many clients already"). Runs in CI."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from tests.factories import make_user

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MIN_CLIENTS = 40
REQUESTS_PER_CLIENT = 8


def backend_count(dsn: str, database: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchone()
    return int(row[0])


def test_concurrent_raters_stay_within_the_pool(live_server) -> None:
    assert connection.vendor == "postgresql"
    bound = settings.DB_POOL_MAX_SIZE
    pool = settings.DATABASES["default"]["OPTIONS"]["pool"]
    assert pool["max_size"] == bound and settings.DATABASES["default"]["CONN_MAX_AGE"] == 0
    clients = max(MIN_CLIENTS, 3 * bound)
    tokens = [Token.objects.create(user=make_user("rater")).key for _ in range(clients)]
    db = connection.settings_dict
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    if db.get("PASSWORD"):
        dsn += f" password={db['PASSWORD']}"
    url = urlsplit(live_server.url)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def rater(token: str) -> None:
        # One keep-alive connection: the server serves it from one thread throughout.
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            start.wait()
            for _ in range(REQUESTS_PER_CLIENT):
                conn.request(
                    "GET", "/api/v1/me/studies/", headers={"Authorization": f"Token {token}"}
                )
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)
                time.sleep(0.05)  # a rater reads; the thread and its socket stay open
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=rater, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    start.wait()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, backend_count(dsn, db["NAME"]))
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert statuses.count(200) == clients * REQUESTS_PER_CLIENT, sorted(set(statuses))
    # The test's own connection comes from the same pool, so the pool bound covers it.
    assert 0 < peak <= bound, f"{peak} connections for a pool of {bound}"
