"""One contract for every driver, run against real stores: each driver supplies only a case
(tests/contract/cases.py). What a user relies on, whatever the job system underneath."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from failboard.drivers.base import GroupedExecutor, JobKey, KeyedReader
from failboard.models import ActionKind, FailedJob, JobQuery, Seek, to_utc
from tests.contract.cases import DriverCase, Spec

NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)


def _specs() -> list[Spec]:
    # Six failures on two queues; two share one second, as real bursts do.
    return [
        Spec(
            "emails",
            "App\\Jobs\\SendMail",
            "RuntimeException",
            "SMTP timeout #1",
            NOW - timedelta(hours=1),
        ),
        Spec(
            "emails",
            "App\\Jobs\\SendMail",
            "RuntimeException",
            "SMTP timeout #2",
            NOW - timedelta(hours=2),
        ),
        Spec(
            "emails",
            "App\\Jobs\\SendMail",
            "RuntimeException",
            "SMTP timeout #3",
            NOW - timedelta(hours=2),
        ),
        Spec(
            "payments",
            "App\\Jobs\\Charge",
            "LogicException",
            "card 4242 declined",
            NOW - timedelta(hours=5),
        ),
        Spec(
            "payments",
            "App\\Jobs\\Charge",
            "LogicException",
            "card 1111 declined",
            NOW - timedelta(hours=30),
        ),
        Spec(
            "payments",
            "App\\Jobs\\Charge",
            "LogicException",
            "card 9999 declined",
            NOW - timedelta(hours=50),
        ),
    ]


def _page_through(case: DriverCase, query: JobQuery) -> list[str]:
    seen: list[str] = []
    while True:
        page = case.reader.list(query)
        seen += [job.id for job in page]
        if len(page) < query.limit:
            return seen
        last = page[-1]
        assert last.failed_at is not None
        query = query.model_copy(
            update={"seek": Seek(failed_at=last.failed_at, sort_key=last.sort_key)}
        )


def test_lists_newest_first_and_pages_without_loss_or_repeat(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    first = case.reader.list(JobQuery(limit=50))
    assert first[0].id == ids[0]
    assert first[-1].id == ids[-1]
    times = [to_utc(job.failed_at) for job in first if job.failed_at]
    assert times == sorted(times, reverse=True)
    assert sorted(_page_through(case, JobQuery(limit=2))) == sorted(ids)
    assert _page_through(case, JobQuery(limit=1, order="oldest"))[0] == ids[-1]
    job = first[0]
    assert job.project == "contract" and job.queue == "emails"
    assert job.name == "App\\Jobs\\SendMail"
    assert job.exception_class == "RuntimeException" and job.exception_message
    assert job.fingerprint


def test_same_bug_same_fingerprint(case: DriverCase) -> None:
    case.make_failures(_specs())
    jobs = case.reader.list(JobQuery())
    by_queue = {j.queue: {x.fingerprint for x in jobs if x.queue == j.queue} for j in jobs}
    assert all(len(prints) == 1 for prints in by_queue.values())
    assert by_queue["emails"] != by_queue["payments"]


def test_filters_run_in_the_store(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    payments = case.reader.list(JobQuery(queue="payments"))
    assert [job.id for job in payments] == ids[3:]
    assert case.reader.count(JobQuery(queue="payments")).value == 3
    capped = case.reader.count(JobQuery(), cap=4)
    assert capped.capped and capped.value == 4
    recent = case.reader.list(JobQuery(failed_after=to_utc(NOW - timedelta(hours=3))))
    assert sorted(job.id for job in recent) == sorted(ids[:3])
    assert sorted(case.reader.queues()) == ["emails", "payments"]


def test_exception_filter_is_a_case_insensitive_literal_substring(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    assert [j.id for j in case.reader.list(JobQuery(exception="CARD 4242"))] == [ids[3]]
    assert case.reader.list(JobQuery(exception="card_4242")) == []
    assert case.reader.list(JobQuery(exception="card%declined")) == []
    assert len(case.reader.list(JobQuery(exception="Declined"))) == 3


def _position(row: JobKey | FailedJob) -> tuple[object, str]:
    return (to_utc(row.failed_at) if row.failed_at else None, row.sort_key)


@pytest.mark.parametrize(
    "query",
    [
        JobQuery(limit=4),
        JobQuery(limit=2, order="oldest"),
        JobQuery(queue="payments"),
        JobQuery(exception="declined", limit=2),
    ],
    ids=["first", "oldest", "queue", "exception"],
)
def test_two_step_listing_gives_the_list(case: DriverCase, query: JobQuery) -> None:
    # keys() then fetch() is what the aggregator does for a page: the same rows as list().
    case.make_failures(_specs())
    reader = case.reader
    assert isinstance(reader, KeyedReader)
    listed = reader.list(query)
    positions = reader.keys(query)
    assert [_position(row) for row in positions] == [_position(job) for job in listed]
    wanted = [row.sort_key for row in positions if not isinstance(row, FailedJob)]
    fetched = {job.sort_key: job for job in reader.fetch(wanted)}
    assert sorted(fetched) == sorted(wanted)
    whole = {row.sort_key: row for row in positions if isinstance(row, FailedJob)}
    assert [{**fetched, **whole}[job.sort_key] for job in listed] == listed
    assert reader.fetch(["no-such-key", "12345678901", "q\x1fnope"]) == []


def test_detail_has_payload_and_traceback(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    detail = case.reader.get(ids[3])
    assert detail is not None
    assert detail.id == ids[3] and detail.queue == "payments"
    assert detail.exception and "card 4242 declined" in detail.exception
    assert detail.payload is not None
    assert case.reader.get("no-such-job") is None


def test_retry_puts_each_job_back_once_and_counts_missing(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    progress: list[tuple[int, int | None]] = []
    result = case.executor.retry(
        [ids[0], ids[3], "no-such-job"], lambda d, t: progress.append((d, t))
    )
    assert (result.succeeded, result.missing, result.failed) == (2, 1, 0)
    assert sorted(case.requeued()) == sorted([ids[0], ids[3]])
    assert progress and progress[-1][0] == 3
    again = case.executor.retry([ids[0]])
    assert (again.succeeded, again.missing) == (0, 1)
    assert case.reader.get(ids[0]) is None
    assert len(case.reader.list(JobQuery())) == 4


def test_delete(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    result = case.executor.delete([ids[1], ids[1], "nope"])
    assert result.succeeded == 1 and result.missing >= 1 and result.failed == 0
    assert case.reader.get(ids[1]) is None and case.requeued() == []


def test_retry_queue_touches_only_that_queue_and_only_earlier_failures(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    cut = to_utc(NOW - timedelta(hours=10))  # a failure newer than this is not touched
    result = case.executor.retry_queue("payments", cut)
    assert result.succeeded == 2
    assert sorted(case.requeued()) == sorted(ids[4:])
    assert {job.id for job in case.reader.list(JobQuery())} == set(ids[:4])
    everything = case.executor.retry_queue(None, to_utc(NOW))
    assert everything.succeeded == 4
    assert case.reader.list(JobQuery()) == []


def test_prune_by_age(case: DriverCase) -> None:
    ids = case.make_failures(_specs())
    result = case.executor.prune(to_utc(NOW - timedelta(hours=24)))
    assert result.succeeded == 2
    assert {job.id for job in case.reader.list(JobQuery())} == set(ids[:4])
    assert case.requeued() == []


def test_capabilities_cover_the_contract_actions(case: DriverCase) -> None:
    for kind in ActionKind:
        assert kind in case.executor.capabilities.actions


@pytest.mark.parametrize("limit", [1, 500])
def test_limit_is_respected(case: DriverCase, limit: int) -> None:
    case.make_failures(_specs())
    assert len(case.reader.list(JobQuery(limit=limit))) == min(limit, 6)


def _grouped(case: DriverCase) -> GroupedExecutor:
    executor = case.executor
    assert executor.capabilities.grouped and isinstance(executor, GroupedExecutor)
    assert executor.group_size >= 1
    return executor


def test_the_grouped_flag_is_what_the_executor_offers(case: DriverCase) -> None:
    # The agent trusts the flag: a driver must not claim the face without the methods.
    offers = isinstance(case.executor, GroupedExecutor)
    assert case.executor.capabilities.grouped == offers


def test_grouped_retry_answers_each_job_like_retry(grouped_case: DriverCase) -> None:
    case = grouped_case
    executor = _grouped(case)
    ids = case.make_failures(_specs())
    answers = executor.retry_each([ids[0], ids[3], "no-such-job", ids[0]])
    assert {key: answer.status for key, answer in answers.items()} == {
        ids[0]: "succeeded",
        ids[3]: "succeeded",
        "no-such-job": "missing",
    }
    assert sorted(case.requeued()) == sorted([ids[0], ids[3]])  # each pushed once
    again = executor.retry_each([ids[0], ids[1]])
    assert (again[ids[0]].status, again[ids[1]].status) == ("missing", "succeeded")
    assert case.reader.get(ids[1]) is None
    assert len(case.reader.list(JobQuery())) == 3


def test_grouped_delete_answers_each_job_like_delete(grouped_case: DriverCase) -> None:
    case = grouped_case
    executor = _grouped(case)
    ids = case.make_failures(_specs())
    answers = executor.delete_each([ids[1], "nope", ids[2]])
    assert {key: answer.status for key, answer in answers.items()} == {
        ids[1]: "succeeded",
        "nope": "missing",
        ids[2]: "succeeded",
    }
    assert case.reader.get(ids[1]) is None and case.requeued() == []
    assert executor.delete_each([ids[1]])[ids[1]].status == "missing"
