"""The worker's group commit (issue 8): claims and finishes share transactions, and
the options that shape the batches are read.

A worker of its own joins the session worker's group (as test_worker_delivery's do)
and, when it stops, logs one "group commit" line: how many claim and finish
transactions it ran for how many claims and finishes.  With batches of one row
every transaction holds exactly one; every task still runs exactly once.  (That
batches do share commits under load is pkg/batcher's unit test and
tests/bench/worker_drain.sh: which worker of the group gets a backlog is up to the
partition assignment, so an e2e count of shared commits would be luck.)"""
import json

from conftest import mysql, wait_until
from test_worker_delivery import (attempts_by, extra_worker, hexid, statuses, submit,
                                  wait_for_assignment)


def group_commit_line(svc):
    with open(svc.log_path, "rb") as f:
        for line in f.read().decode(errors="replace").splitlines():
            if '"group commit"' in line:
                return json.loads(line)
    raise AssertionError(f"no group commit line; log:\n{svc.tail()}")


def run_worker(producer, name, extra_env, n):
    svc = extra_worker(name, extra_env)
    submitted = []
    try:
        wait_for_assignment(producer, svc.worker_id, submitted)
        ids = [submit(producer, {"type": "noop", "payload": {"i": i}}) for i in range(n)]
        submitted.extend(ids)
        wait_until(lambda: all(s == "SUCCEEDED" for s in statuses(submitted).values()), 60,
                   "every task to succeed", interval=0.2)
        mine = attempts_by(svc.worker_id, "succeeded", submitted)
    finally:
        rc = svc.stop()
    assert rc == 0, svc.tail()
    # one attempt each, whichever worker ran it
    rows = mysql("SELECT LOWER(HEX(task_id)), COUNT(*) FROM task_attempts WHERE task_id IN ("
                 + ",".join(f"UNHEX('{hexid(i)}')" for i in submitted) + ") GROUP BY task_id")
    assert len(rows) == len(submitted) and all(int(c) == 1 for _, c in rows), rows
    return group_commit_line(svc), mine


def test_batches_of_one_row(producer, worker):
    line, mine = run_worker(producer, "batch1", {"DISPATCH_WORKER_CLAIM_BATCH": "1",
                                                 "DISPATCH_WORKER_FINISH_BATCH": "1",
                                                 "DISPATCH_WORKER_BATCH_WINDOW_MS": "0"}, 40)
    assert mine >= 1 and line["claims"] >= mine and line["finishes"] >= mine, (line, mine)
    assert line["claim_transactions"] == line["claims"], line
    assert line["finish_transactions"] == line["finishes"], line
