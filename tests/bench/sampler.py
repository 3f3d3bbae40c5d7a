#!/usr/bin/env python3
"""sampler.py — bench.sh's evidence: once a second, one tab-separated line of
    t  phase  busy%  producer%  worker%  mariadbd%  kafka%  producer_rss_kb  worker_rss_kb  fsyncs/s  lock_waits/s
CPU per process in % of one core from /proc/PID/stat (utime+stime), busy in % of all
cores from /proc/stat, RSS from /proc/PID/status, fsyncs and row lock waits from
MariaDB's SHOW GLOBAL STATUS (Innodb_data_fsyncs, Innodb_row_lock_waits).  The pids
come from DIR/run/NAME.pid (the harness), the phase from DIR/phase.

    sampler.py DIR OUT   (MariaDB from DISPATCH_MYSQL_*; runs until killed)
"""
import os
import subprocess
import sys
import time

NAMES = ("producer", "worker", "mariadb", "kafka")
HZ = os.sysconf("SC_CLK_TCK")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def proc(run, name):
    pid = read(os.path.join(run, name + ".pid")).strip()
    stat = read("/proc/%s/stat" % pid) if pid else ""
    if not stat:
        return None, 0
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = 0
    for line in read("/proc/%s/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return (pid, ticks), rss


def machine():
    v = [int(x) for x in read("/proc/stat").split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


def mariadb_status():
    env = os.environ
    try:
        out = subprocess.run(
            ["mariadb", "--protocol=tcp", "-h", env["DISPATCH_MYSQL_HOST"], "-P",
             env["DISPATCH_MYSQL_PORT"], "-u", env["DISPATCH_MYSQL_USER"],
             "-p" + env["DISPATCH_MYSQL_PASSWORD"], "-N", "-B", "-e",
             "SHOW GLOBAL STATUS WHERE Variable_name IN "
             "('Innodb_data_fsyncs','Innodb_row_lock_waits')"],
            capture_output=True, text=True, timeout=5).stdout
        d = dict(line.split("\t") for line in out.splitlines() if "\t" in line)
        return int(d.get("Innodb_data_fsyncs", 0)), int(d.get("Innodb_row_lock_waits", 0))
    except (subprocess.SubprocessError, KeyError, ValueError):
        return None


def main():
    run, out = os.path.join(sys.argv[1], "run"), sys.argv[2]
    phase_file = os.path.join(sys.argv[1], "phase")
    t0 = time.monotonic()
    prev = None
    with open(out, "a", buffering=1) as f:
        while True:
            t = time.monotonic()
            procs = {n: proc(run, n) for n in NAMES}
            busy, total = machine()
            db = mariadb_status()
            if prev:
                pt, pp, pbusy, ptotal, pdb = prev
                dt = t - pt
                cols = ["%.1f" % (t - t0), read(phase_file).strip() or "-",
                        "%.0f" % (100.0 * (busy - pbusy) / max(1, total - ptotal))]
                for n in NAMES:
                    cur, old = procs[n][0], pp[n][0]
                    if cur and old and cur[0] == old[0]:
                        cols.append("%.0f" % (100.0 * (cur[1] - old[1]) / HZ / dt))
                    else:
                        cols.append("0")
                cols += [str(procs["producer"][1]), str(procs["worker"][1])]
                if db and pdb:
                    cols += ["%.0f" % ((db[0] - pdb[0]) / dt), "%.0f" % ((db[1] - pdb[1]) / dt)]
                else:
                    cols += ["0", "0"]
                f.write("\t".join(cols) + "\n")
            prev = (t, procs, busy, total, db or (prev[4] if prev else None))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))


if __name__ == "__main__":
    main()
