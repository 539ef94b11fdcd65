"""The watchdog: asks the primary `SELECT 1` every second (a 2 s connection timeout); after three
failures in a row it promotes the replica, once, and then only watches:

  ENGINE=mariadb    STOP SLAVE; SET GLOBAL read_only = 0   (as root)
  ENGINE=postgres   SELECT pg_promote()

It does not fence the old primary and does not touch HAProxy: HAProxy already sends connections
to the replica (its `backup` server) while the primary fails its checks, and back to the old
primary once that one answers again."""
import os
import sys
import time

ENGINE = os.environ["ENGINE"]
PRIMARY = os.environ["PRIMARY"]
REPLICA = os.environ["REPLICA"]
FAILURES_MAX = int(os.environ.get("FAILURES_MAX", "3"))


def say(message: str) -> None:
    print(f"watchdog[{ENGINE}] {time.strftime('%H:%M:%S')} {message}", flush=True)


def connect(host: str):
    if ENGINE == "mariadb":
        import pymysql
        return pymysql.connect(host=host, user="root", password="root", autocommit=True,
                               connect_timeout=2, read_timeout=2, write_timeout=2)
    import psycopg2
    conn = psycopg2.connect(host=host, user="postgres", password="postgres", dbname="postgres",
                            connect_timeout=2, options="-c statement_timeout=2000")
    conn.autocommit = True
    return conn


def run(host: str, statements) -> None:
    conn = connect(host)
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
    finally:
        conn.close()


def promote() -> None:
    if ENGINE == "mariadb":
        run(REPLICA, ["STOP SLAVE", "SET GLOBAL read_only = 0"])
    else:
        run(REPLICA, ["SELECT pg_promote()"])


def main() -> None:
    failures = 0
    promoted = False
    say(f"watching {PRIMARY}; replica {REPLICA}")
    while True:
        time.sleep(1)
        try:
            run(PRIMARY, ["SELECT 1"])
            failures = 0
        except Exception as e:
            failures += 1
            say(f"{PRIMARY} did not answer ({failures}/{FAILURES_MAX}): {e}")
        if failures >= FAILURES_MAX and not promoted:
            try:
                promote()
                promoted = True
                say(f"promoted {REPLICA}")
            except Exception as e:
                say(f"promoting {REPLICA} failed: {e}")


if __name__ == "__main__":
    sys.exit(main())
