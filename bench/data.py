"""Realistic Laravel ``failed_jobs`` rows, made fast and kept between runs.

Rows look like what a busy Laravel application leaves behind: payloads as Laravel's
``Queue::createPayload`` writes them (built with the driver's own ``build_payload``: 1-4 KB, or
2-20 KB with ``large=True``, the sizes issue #8 asks the listing benchmarks for), PHP
exception texts with a stack trace of 23-25 frames through the queue worker, several queues and
connections, ``failed_at`` spread over the 30 days before the dataset was built. Rows come from a
seeded generator (only the random ids ``build_payload`` gives Redis payloads are not seeded), so a
stored dataset is as good as a new one and is reused as long as its row count and ``VERSION``
match.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from bench.services import Kind, database_url, ensure_database
from failboard.db import create_engine
from failboard.drivers.laravel.payload import build_payload, php_json_encode
from failboard.drivers.laravel.schema import create_tables, insert_failed_jobs

__all__ = [
    "COMMON_TERM",
    "RARE_TERM",
    "Dataset",
    "ensure_dataset",
    "failed_job_rows",
    "set_failed_at_index",
]

VERSION = 1
"""Bump when the generator changes: stored datasets of another version are rebuilt."""
LARGE_VERSION = 2
"""The version of the ``large=True`` rows (2-20 KB payloads); the 1-4 KB rows stay version 1
so that the retry datasets other benchmarks keep are not rebuilt by this change."""

COMMON_TERM = "declined"
"""In the message of every card decline: about one row in 22."""
RARE_TERM = "vip-customer@example.org"
"""In the payload of five rows per 100,000: a search that has to look at every row."""
_RARE_EVERY = 20_000

FAILED_AT_INDEX = "failed_jobs_failed_at_index"
_META = "fb_bench_dataset"
_COMMIT_EVERY = 20_000

_VENDOR = "/var/www/html/vendor/laravel/framework/src/Illuminate"


@dataclass(frozen=True, slots=True)
class _Failure:
    exception: str
    message: str  # str.format()ted with the row's random values
    where: str
    frames: tuple[str, ...]  # the application's own frames, above the worker's


@dataclass(frozen=True, slots=True)
class _Job:
    name: str
    queue: str
    weight: int
    failures: tuple[_Failure, ...]


_HTTP_TIMEOUT = _Failure(
    "Illuminate\\Http\\Client\\ConnectionException",
    "cURL error 28: Operation timed out after {ms} milliseconds with 0 bytes received (see "
    "https://curl.haxx.se/libcurl/c/libcurl-errors.html) for https://api.partner.example/v2/"
    "orders/{id}",
    "{vendor}/Http/Client/PendingRequest.php:1599",
    (
        "{vendor}/Support/helpers.php(338): "
        "Illuminate\\Http\\Client\\PendingRequest->Illuminate\\Http\\Client\\{{closure}}(1)",
        "{vendor}/Http/Client/PendingRequest.php(931): retry(0, Object(Closure), 100, "
        "Object(Closure))",
        "/var/www/html/app/Services/PartnerClient.php(88): "
        "Illuminate\\Http\\Client\\PendingRequest->post('orders/{id}', Array)",
    ),
)
_CARD = _Failure(
    "Stripe\\Exception\\CardException",
    "Your card was declined. (request req_{token}, customer cus_{token})",
    "/var/www/html/vendor/stripe/stripe-php/lib/Exception/ApiErrorException.php:38",
    (
        "/var/www/html/vendor/stripe/stripe-php/lib/ApiRequestor.php(211): "
        "Stripe\\Exception\\CardException::factory('Your card was d...', 402, '{{\\n  \"error\": "
        "...', Array, Object(Stripe\\Util\\CaseInsensitiveArray), 'card_declined', "
        "'generic_decline', NULL)",
        "/var/www/html/vendor/stripe/stripe-php/lib/ApiRequestor.php(153): "
        "Stripe\\ApiRequestor->_interpretResponse('{{\\n  \"error\": ...', 402, "
        "Object(Stripe\\Util\\CaseInsensitiveArray))",
        "/var/www/html/app/Billing/Charger.php(57): Stripe\\Service\\PaymentIntentService->"
        "create(Array)",
    ),
)
_DEADLOCK = _Failure(
    "Illuminate\\Database\\QueryException",
    "SQLSTATE[40001]: Serialization failure: 1213 Deadlock found when trying to get lock; try "
    "restarting transaction (Connection: mysql, SQL: update `orders` set `status` = paid, "
    "`updated_at` = 2026-11-{day:02d} 10:{minute:02d}:12 where `id` = {id})",
    "{vendor}/Database/Connection.php:825",
    (
        "{vendor}/Database/Connection.php(779): Illuminate\\Database\\Connection->"
        "runQueryCallback('update `orders`...', Array, Object(Closure))",
        "{vendor}/Database/Connection.php(583): Illuminate\\Database\\Connection->"
        "run('update `orders`...', Array, Object(Closure))",
        "{vendor}/Database/Eloquent/Builder.php(1066): Illuminate\\Database\\Query\\Builder->"
        "update(Array)",
        "/var/www/html/app/Models/Order.php(142): Illuminate\\Database\\Eloquent\\Model->save()",
    ),
)
_SMTP = _Failure(
    "Symfony\\Component\\Mailer\\Exception\\TransportException",
    'Connection to "smtp.mailgun.org:587" timed out after {ms} ms.',
    "/var/www/html/vendor/symfony/mailer/Transport/Smtp/Stream/SocketStream.php:154",
    (
        "/var/www/html/vendor/symfony/mailer/Transport/Smtp/SmtpTransport.php(275): "
        "Symfony\\Component\\Mailer\\Transport\\Smtp\\Stream\\SocketStream->initialize()",
        "/var/www/html/vendor/symfony/mailer/Transport/AbstractTransport.php(69): "
        "Symfony\\Component\\Mailer\\Transport\\Smtp\\SmtpTransport->doSend(Object(Symfony\\"
        "Component\\Mailer\\SentMessage))",
        "{vendor}/Mail/Mailer.php(584): Symfony\\Component\\Mailer\\Transport\\"
        "AbstractTransport->send(Object(Symfony\\Component\\Mime\\Email), NULL)",
    ),
)
_MISSING_MODEL = _Failure(
    "Illuminate\\Database\\Eloquent\\ModelNotFoundException",
    "No query results for model [App\\Models\\Order] {id}",
    "{vendor}/Database/Eloquent/Builder.php:621",
    (
        "{vendor}/Queue/SerializesAndRestoresModelIdentifiers.php(110): "
        "Illuminate\\Database\\Eloquent\\Builder->firstOrFail()",
        "{vendor}/Queue/SerializesAndRestoresModelIdentifiers.php(63): "
        "App\\Jobs\\BaseJob->restoreModel(Object(Illuminate\\Contracts\\Database\\"
        "ModelIdentifier))",
    ),
)
_UNDEFINED_KEY = _Failure(
    "ErrorException",
    'Undefined array key "{key}"',
    "/var/www/html/app/Webhooks/Payload.php:{line}",
    (
        "{vendor}/Foundation/Bootstrap/HandleExceptions.php(255): "
        "Illuminate\\Foundation\\Bootstrap\\HandleExceptions->handleError(2, 'Undefined "
        "array...', '/var/www/html/a...', 41)",
        "/var/www/html/app/Webhooks/Payload.php(41): Illuminate\\Foundation\\Bootstrap\\"
        "HandleExceptions->Illuminate\\Foundation\\Bootstrap\\{{closure}}(2, 'Undefined "
        "array...', '/var/www/html/a...', 41)",
    ),
)
_BAD_GATEWAY = _Failure(
    "GuzzleHttp\\Exception\\ServerException",
    "Server error: `POST https://hooks.customer-{id}.example/events` resulted in a `502 Bad "
    "Gateway` response:\n<html><body><h1>502 Bad Gateway</h1></body></html>",
    "/var/www/html/vendor/guzzlehttp/guzzle/src/Exception/RequestException.php:113",
    (
        "/var/www/html/vendor/guzzlehttp/guzzle/src/Middleware.php(72): "
        "GuzzleHttp\\Exception\\RequestException::create(Object(GuzzleHttp\\Psr7\\Request), "
        "Object(GuzzleHttp\\Psr7\\Response), NULL, Array, NULL)",
        "/var/www/html/vendor/guzzlehttp/promises/src/Promise.php(209): "
        "GuzzleHttp\\Middleware::GuzzleHttp\\{{closure}}(Object(GuzzleHttp\\Psr7\\Response))",
    ),
)
_DISK = _Failure(
    "RuntimeException",
    "Export {id} failed: fwrite(): Write of {size} bytes failed with errno=122 Disk quota exceeded",
    "/var/www/html/app/Exports/CsvWriter.php:{line}",
    (
        "/var/www/html/app/Exports/OrdersExport.php(77): App\\Exports\\CsvWriter->write(Array)",
        "{vendor}/Support/LazyCollection.php(240): App\\Exports\\OrdersExport->"
        "App\\Exports\\{{closure}}(Array, {id})",
    ),
)
_TOO_MANY = _Failure(
    "Illuminate\\Queue\\MaxAttemptsExceededException",
    "{job} has been attempted too many times.",
    "{vendor}/Queue/MaxAttemptsExceededException.php:24",
    (
        "{vendor}/Queue/Worker.php(820): Illuminate\\Queue\\MaxAttemptsExceededException::"
        "forJob(Object(Illuminate\\Queue\\Jobs\\DatabaseJob))",
        "{vendor}/Queue/Worker.php(535): Illuminate\\Queue\\Worker->"
        "maxAttemptsExceededException(Object(Illuminate\\Queue\\Jobs\\DatabaseJob))",
    ),
)

_JOBS = (
    _Job("App\\Jobs\\SendInvoice", "emails", 14, (_SMTP, _MISSING_MODEL, _TOO_MANY)),
    _Job("App\\Jobs\\SendWelcomeEmail", "emails", 8, (_SMTP, _TOO_MANY)),
    _Job("App\\Jobs\\ChargeSubscription", "billing", 9, (_CARD, _DEADLOCK, _HTTP_TIMEOUT)),
    _Job("App\\Jobs\\SyncStripeCustomer", "billing", 3, (_CARD, _HTTP_TIMEOUT)),
    _Job(
        "App\\Jobs\\DeliverWebhook", "webhooks", 18, (_BAD_GATEWAY, _HTTP_TIMEOUT, _UNDEFINED_KEY)
    ),
    _Job("App\\Jobs\\ExportOrdersCsv", "exports", 5, (_DISK, _TOO_MANY)),
    _Job("App\\Jobs\\GenerateMonthlyReport", "exports", 3, (_DISK, _DEADLOCK)),
    _Job("App\\Jobs\\ImportProducts", "default", 12, (_DEADLOCK, _HTTP_TIMEOUT, _MISSING_MODEL)),
    _Job("App\\Jobs\\ProcessPodcast", "default", 10, (_DISK, _TOO_MANY)),
    _Job("App\\Jobs\\ReindexSearch", "low", 8, (_HTTP_TIMEOUT, _DEADLOCK)),
    _Job("App\\Jobs\\PruneStaleCarts", "low", 10, (_DEADLOCK, _MISSING_MODEL)),
)
_JOB_WEIGHTS = [job.weight for job in _JOBS]
_CONNECTIONS = ("database", "redis", "sqs")
_CONNECTION_WEIGHTS = (70, 25, 5)

_WORKER_FRAMES = (
    "{vendor}/Container/BoundMethod.php(36): {job}->handle(Object(App\\Services\\Clock))",
    "{vendor}/Container/Util.php(43): Illuminate\\Container\\BoundMethod::"
    "Illuminate\\Container\\{{closure}}()",
    "{vendor}/Container/BoundMethod.php(96): Illuminate\\Container\\Util::"
    "unwrapIfClosure(Object(Closure))",
    "{vendor}/Container/BoundMethod.php(35): Illuminate\\Container\\BoundMethod::"
    "callBoundMethod(Object(Illuminate\\Foundation\\Application), Array, Object(Closure))",
    "{vendor}/Container/Container.php(754): Illuminate\\Container\\BoundMethod::"
    "call(Object(Illuminate\\Foundation\\Application), Array, Array, NULL)",
    "{vendor}/Bus/Dispatcher.php(126): Illuminate\\Container\\Container->call(Array)",
    "{vendor}/Pipeline/Pipeline.php(170): Illuminate\\Bus\\Dispatcher->"
    "Illuminate\\Bus\\{{closure}}(Object({job}))",
    "{vendor}/Pipeline/Pipeline.php(127): Illuminate\\Pipeline\\Pipeline->"
    "Illuminate\\Pipeline\\{{closure}}(Object({job}))",
    "{vendor}/Bus/Dispatcher.php(130): Illuminate\\Pipeline\\Pipeline->then(Object(Closure))",
    "{vendor}/Queue/CallQueuedHandler.php(125): Illuminate\\Bus\\Dispatcher->"
    "dispatchNow(Object({job}), false)",
    "{vendor}/Pipeline/Pipeline.php(170): Illuminate\\Queue\\CallQueuedHandler->"
    "Illuminate\\Queue\\{{closure}}(Object({job}))",
    "{vendor}/Pipeline/Pipeline.php(127): Illuminate\\Pipeline\\Pipeline->"
    "Illuminate\\Pipeline\\{{closure}}(Object({job}))",
    "{vendor}/Queue/CallQueuedHandler.php(120): Illuminate\\Pipeline\\Pipeline->"
    "then(Object(Closure))",
    "{vendor}/Queue/CallQueuedHandler.php(68): Illuminate\\Queue\\CallQueuedHandler->"
    "dispatchThroughMiddleware(Object(Illuminate\\Queue\\Jobs\\{driver}Job), Object({job}))",
    "{vendor}/Queue/Jobs/Job.php(102): Illuminate\\Queue\\CallQueuedHandler->"
    "call(Object(Illuminate\\Queue\\Jobs\\{driver}Job), Array)",
    "{vendor}/Queue/Worker.php(441): Illuminate\\Queue\\Jobs\\Job->fire()",
    "{vendor}/Queue/Worker.php(391): Illuminate\\Queue\\Worker->process('{connection}', "
    "Object(Illuminate\\Queue\\Jobs\\{driver}Job), Object(Illuminate\\Queue\\WorkerOptions))",
    "{vendor}/Queue/Worker.php(177): Illuminate\\Queue\\Worker->runJob(Object(Illuminate\\"
    "Queue\\Jobs\\{driver}Job), '{connection}', Object(Illuminate\\Queue\\WorkerOptions))",
    "{vendor}/Queue/Console/WorkCommand.php(137): Illuminate\\Queue\\Worker->"
    "daemon('{connection}', '{queue}', Object(Illuminate\\Queue\\WorkerOptions))",
    "{vendor}/Queue/Console/WorkCommand.php(120): Illuminate\\Queue\\Console\\WorkCommand->"
    "runWorker('{connection}', '{queue}')",
)
_ARTISAN = (
    "/var/www/html/artisan(35): Illuminate\\Foundation\\Console\\Kernel->handle(Object(Symfony"
    "\\Component\\Console\\Input\\ArgvInput), Object(Symfony\\Component\\Console\\Output\\"
    "ConsoleOutput))"
)
_DRIVER = {"database": "Database", "redis": "Redis", "sqs": "Sqs"}
_WORDS = (
    "standard shipping express pickup gift-wrap discount coupon loyalty voucher refund "
    "backorder preorder warehouse north south east west priority bulk sample"
).split()


def _line_items(seed: int, count: int) -> tuple[str, ...]:
    # A pool to slice from: drawing every item of every row is what made generation slow.
    rng = random.Random(seed)
    return tuple(
        f'{{"sku":"SKU-{rng.randint(10_000, 99_999)}","qty":{rng.randint(1, 9)},'
        f'"note":"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"}}'
        for _ in range(count)
    )


_LINE_ITEMS = _line_items(42, 4_096)


def _exception(rng: random.Random, failure: _Failure, job: str, connection: str, queue: str) -> str:
    values = {
        "ms": rng.randint(5_000, 60_000),
        "id": rng.randint(1_000, 9_999_999),
        "token": f"{rng.getrandbits(64):016x}",
        "day": rng.randint(1, 30),
        "minute": rng.randint(0, 59),
        "key": rng.choice(("customer_id", "event", "data.object", "signature")),
        "line": rng.randint(20, 300),
        "size": rng.randint(4_096, 65_536),
        "job": job,
        "vendor": _VENDOR,
    }
    where = failure.where.format(**values)
    lines = [f"{failure.exception}: {failure.message.format(**values)} in {where}", "Stack trace:"]
    frames = [frame.format(**values) for frame in failure.frames]
    lines += [f"#{n} {frame}" for n, frame in enumerate(frames)]
    lines.append(_worker_frames(job, connection, queue, len(frames)))
    return "\n".join(lines)


@lru_cache(maxsize=1_024)
def _worker_frames(job: str, connection: str, queue: str, first: int) -> str:
    """The queue worker's part of the trace, numbered from ``first``, down to ``{main}``."""
    context = {
        "job": job,
        "connection": connection,
        "queue": queue,
        "driver": _DRIVER[connection],
        "vendor": _VENDOR,
    }
    frames = [frame.format(**context) for frame in _WORKER_FRAMES]
    frames.append(_ARTISAN)
    lines = [f"#{n} {frame}" for n, frame in enumerate(frames, start=first)]
    lines.append(f"#{first + len(frames)} {{main}}")
    return "\n".join(lines)


def _properties(rng: random.Random, index: int, large: bool = False) -> dict[str, Any]:
    # What a job's public properties serialize to: ids, an email, and one long field (an order's
    # line items, a webhook body) whose length spreads the payloads over 1-4 KB, or 2-20 KB
    # when large (log-uniform: most payloads small, a long tail of big ones).
    customer = rng.randint(1, 500_000)
    email = RARE_TERM if index % _RARE_EVERY == 7 else f"customer{customer}@example.com"
    count = (
        round(math.exp(rng.uniform(math.log(25), math.log(315)))) if large else rng.randint(8, 55)
    )
    start = rng.randrange(len(_LINE_ITEMS) - count)
    items = ",".join(_LINE_ITEMS[start : start + count])
    return {
        "orderId": rng.randint(1_000, 9_999_999),
        "customerEmail": email,
        "locale": rng.choice(("en", "de", "fr", "nl", "es")),
        "tries": 3,
        "lineItems": f"[{items}]",
    }


def failed_job_rows(
    count: int,
    *,
    seed: int,
    anchor: datetime,
    days: int = 30,
    connection: str | None = None,
    queue: str | None = None,
    large: bool = False,
) -> Iterator[dict[str, Any]]:
    """``count`` rows for :func:`~failboard.drivers.laravel.schema.insert_failed_jobs`.

    ``failed_at`` lies in the ``days`` before ``anchor`` (naive UTC); ``connection`` and
    ``queue`` force every row onto one (for the retry benchmarks, which need database jobs);
    ``large`` makes 2-20 KB payloads instead of 1-4 KB.
    """
    rng = random.Random(seed)
    span = days * 86_400
    base = anchor.replace(tzinfo=None, microsecond=0)
    for index in range(count):
        job = rng.choices(_JOBS, _JOB_WEIGHTS)[0]
        conn = connection or rng.choices(_CONNECTIONS, _CONNECTION_WEIGHTS)[0]
        row_queue = queue or job.queue
        failed_at = base - timedelta(seconds=rng.randrange(span))
        job_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        payload = build_payload(
            job.name,
            uuid=job_uuid,
            properties=_properties(rng, index, large),
            max_tries=rng.choice((None, 3, 5)),
            timeout=rng.choice((None, 60, 120)),
            backoff=rng.choice((None, "10,60,300")),
            created_at=int(failed_at.replace(tzinfo=UTC).timestamp()) - rng.randint(1, 3_600),
            redis=conn == "redis",
        )
        failure = rng.choice(job.failures)
        yield {
            "uuid": job_uuid,
            "connection": conn,
            "queue": row_queue,
            "payload": php_json_encode(payload),
            "exception": _exception(rng, failure, job.name, conn, row_queue),
            "failed_at": failed_at,
        }


@dataclass(frozen=True, slots=True)
class Dataset:
    """A stored ``failed_jobs`` table: where it is and whether this run had to build it."""

    kind: Kind
    name: str
    url: str
    rows: int
    built_seconds: float | None  # None: reused as it was


def _stored_rows(engine: sa.Engine, version: int) -> int | None:
    """The row count of a complete dataset of ``version``, or None."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(_META) or not inspector.has_table("failed_jobs"):
        return None
    with engine.connect() as connection:
        meta = connection.execute(sa.text(f"SELECT version, row_count FROM {_META}")).first()
        if meta is None or meta.version != version:
            return None
        count = connection.execute(sa.text("SELECT count(*) FROM failed_jobs")).scalar_one()
    return int(count) if int(count) == int(meta.row_count) else None


def ensure_dataset(
    kind: Kind,
    name: str,
    rows: int,
    *,
    seed: int,
    connection: str | None = None,
    queue: str | None = None,
    large: bool = False,
    log: Any = print,
) -> Dataset:
    """The dataset ``name`` with ``rows`` rows on ``kind``: reused when it is there and complete,
    else (re)built."""
    ensure_database(kind, name)
    url = database_url(kind, name)
    engine = create_engine(url, timeout=30.0)
    version = LARGE_VERSION if large else VERSION
    try:
        if _stored_rows(engine, version) == rows:
            return Dataset(kind, name, url, rows, None)
        log(f"building {name} on {kind}: {rows:,} rows (kept for later runs)")
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {_META}"))
            conn.execute(sa.text("DROP TABLE IF EXISTS failed_jobs"))
            conn.execute(sa.text("DROP TABLE IF EXISTS jobs"))
        create_tables(engine)
        anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        generated = failed_job_rows(
            rows, seed=seed, anchor=anchor, connection=connection, queue=queue, large=large
        )
        if kind == "postgres":
            _copy_postgres(engine, generated)
        else:
            _insert(engine, generated)
        _analyze(engine, kind)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {_META} (version INTEGER, row_count INTEGER)"))
            conn.execute(
                sa.text(f"INSERT INTO {_META} VALUES (:version, :rows)"),
                {"version": version, "rows": rows},
            )
        return Dataset(kind, name, url, rows, time.perf_counter() - started)
    finally:
        engine.dispose()


def _insert(engine: sa.Engine, rows: Iterator[dict[str, Any]]) -> None:
    # The driver's own bulk insert, in large transactions: one commit per _COMMIT_EVERY rows.
    while True:
        chunk = [row for _, row in zip(range(_COMMIT_EVERY), rows, strict=False)]
        if not chunk:
            return
        with engine.begin() as connection:
            insert_failed_jobs(connection, chunk)


def _copy_postgres(engine: sa.Engine, rows: Iterator[dict[str, Any]]) -> None:
    # COPY is an order of magnitude faster than INSERTs for a few hundred MB.
    columns = ("uuid", "connection", "queue", "payload", "exception", "failed_at")
    with engine.begin() as connection:
        raw: Any = connection.connection.driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY failed_jobs ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(tuple(row[column] for column in columns))


def _analyze(engine: sa.Engine, kind: Kind) -> None:
    # Fresh statistics (and, on PostgreSQL, the visibility map that index-only scans need), as
    # autovacuum would have left them on a table that grew over 30 days.
    if kind == "postgres":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE failed_jobs")
    elif kind == "mysql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE TABLE failed_jobs").all()
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


def set_failed_at_index(url: str, present: bool) -> None:
    """Add or remove the index on ``failed_at`` alone (Laravel's migration does not make one)."""
    engine = create_engine(url, timeout=30.0)
    try:
        names = {index["name"] for index in sa.inspect(engine).get_indexes("failed_jobs")}
        if present == (FAILED_AT_INDEX in names):
            return
        with engine.begin() as connection:
            if present:
                connection.exec_driver_sql(
                    f"CREATE INDEX {FAILED_AT_INDEX} ON failed_jobs (failed_at)"
                )
            elif engine.dialect.name in ("mysql", "mariadb"):
                connection.exec_driver_sql(f"DROP INDEX {FAILED_AT_INDEX} ON failed_jobs")
            else:
                connection.exec_driver_sql(f"DROP INDEX {FAILED_AT_INDEX}")
    finally:
        engine.dispose()
