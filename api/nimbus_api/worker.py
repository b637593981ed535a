"""Celery workers: jobs fed through RabbitMQ to worker processes on any number of machines.

Chosen with ``NIMBUS_API_QUEUE=celery``. The API only publishes a job's id; a worker loads the job from
the shared database and runs it with the same ``JobRunner`` as the in-process queue. Nothing else travels
through the broker (no extra vars, no secrets), and no result backend is needed: the job's status and
events are in the database. Cancellation works across machines because the runner polls the job's row.
A job whose hosts are busy is retried (a new message with a countdown) instead of holding a worker
process while it waits. Each worker reaps jobs whose worker died (JobRunner.reap) before it takes one.
"""

from __future__ import annotations

import time
from functools import lru_cache

from celery import Celery
from kombu import Queue

from nimbus_api.db import make_engine, make_sessionmaker
from nimbus_api.runner import LOCK_RETRY, JobRunner
from nimbus_api.settings import get_settings

TASK = "nimbus.run_job"


def make_celery(settings) -> Celery:
    app = Celery("nimbus", broker=settings.broker_url)
    app.conf.update(
        broker_transport_options=settings.broker_options,
        task_default_queue=settings.celery_queue,
        # A quorum queue: replicated across a RabbitMQ cluster, so a broker node's loss loses no job (and the
        # rabbitmq role makes quorum the vhost default anyway). Celery then uses per-consumer QoS.
        task_queues=[Queue(settings.celery_queue, queue_arguments={"x-queue-type": "quorum"})],
        worker_detect_quorum_queues=True,
        # Remote control needs auto-delete queues, which a quorum-default vhost refuses; jobs are
        # controlled through the database instead.
        worker_enable_remote_control=False,
        # One job at a time per worker process, acknowledged when it ends: a worker that dies mid-job
        # leaves the message to another worker instead of losing it (the runner skips a job no longer
        # pending, so a redelivery never runs a job twice).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


app = make_celery(get_settings())


@lru_cache
def _runner() -> JobRunner:
    settings = get_settings()
    return JobRunner(settings, make_sessionmaker(make_engine(settings.database_url)))


@app.task(name=TASK, bind=True)
def run_job(task, job_id: str) -> str:
    status = _runner().run(job_id, node=task.request.hostname)
    if status == "pending":
        # Its hosts are busy: publish it again and free this worker process for other jobs meanwhile. The
        # new message is sent before this one is acknowledged, so the job is never without one. No
        # countdown: an ETA message on a quorum queue needs RabbitMQ's delayed-delivery exchanges, which a
        # plain vhost does not have, and the job would sit unseen; a short pause here paces the retries.
        time.sleep(LOCK_RETRY)
        task.app.send_task(TASK, args=[job_id])
    return status


class CeleryQueue:
    """What the API uses with ``queue=celery``: publish the job id, nothing more."""

    def __init__(self, settings):
        self.app = make_celery(settings)

    def submit(self, job_id: str):
        self.app.send_task(TASK, args=[job_id])

    def drain(self, timeout=None) -> bool:
        """Jobs run elsewhere; there is nothing to wait for in this process."""
        return True
