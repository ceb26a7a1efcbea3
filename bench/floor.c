/*
 * Floor probes: what the database and the machine allow, measured with plain
 * libpq and no engine, so that every engine figure can be read as a ratio.
 *
 *   floor URL SAMPLES QUEUE_ROWS
 *
 * prints one JSON object:
 *   commit_ms          1-row INSERT in autocommit (one writing commit), per sample
 *   notify_rtt_ms      INSERT + NOTIFY committed by one connection until a second
 *                      connection, waiting in LISTEN, has read the notification
 *   queue_rows_per_s   2 clients draining a bare queue table: each row is claimed
 *                      with FOR UPDATE SKIP LOCKED (one commit) and completed (one
 *                      commit), i.e. the claim+complete cycle without an engine
 *   queue_rows, queue_seconds
 *
 * The tables live in the schema tasker_bench and are dropped at the end.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, PGconn *conn)
{
    fprintf(stderr, "floor: %s: %s\n", what, conn ? PQerrorMessage(conn) : "out of memory");
    exit(1);
}

static PGconn *connect_or_die(const char *url)
{
    PGconn *conn = PQconnectdb(url);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        die("connect", conn);
    return conn;
}

/* Runs a statement that returns no rows or a result the caller ignores. */
static void exec_or_die(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        PQclear(res);
        die(sql, conn);
    }
    PQclear(res);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_samples(const char *name, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    printf("\"%s\": [", name);
    for (int i = 0; i < n; i++)
        printf("%s%.4f", i ? "," : "", v[i]);
    printf("]");
}

static void probe_commit(PGconn *conn, double *out, int n)
{
    for (int i = -20; i < n; i++) {
        double t0 = now_ms();
        PGresult *res = PQexecParams(conn, "INSERT INTO tasker_bench.commits (v) VALUES (1)", 0, NULL, NULL,
                                     NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            PQclear(res);
            die("insert", conn);
        }
        PQclear(res);
        if (i >= 0)
            out[i] = now_ms() - t0;
    }
}

/* Waits up to 5 s for one notification on `conn`. */
static void await_notify(PGconn *conn)
{
    double deadline = now_ms() + 5000.0;
    for (;;) {
        if (!PQconsumeInput(conn))
            die("consume", conn);
        PGnotify *note = PQnotifies(conn);
        if (note != NULL) {
            PQfreemem(note);
            return;
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            fprintf(stderr, "floor: no notification within 5 s\n");
            exit(1);
        }
        struct pollfd pfd = { .fd = PQsocket(conn), .events = POLLIN };
        if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
            perror("floor: poll");
            exit(1);
        }
    }
}

static void probe_notify(PGconn *writer, PGconn *listener, double *out, int n)
{
    exec_or_die(listener, "LISTEN tasker_bench_floor");
    for (int i = -20; i < n; i++) {
        double t0 = now_ms();
        PGresult *res = PQexec(writer, "BEGIN; INSERT INTO tasker_bench.commits (v) VALUES (2); "
                                       "NOTIFY tasker_bench_floor; COMMIT");
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            PQclear(res);
            die("notify", writer);
        }
        PQclear(res);
        await_notify(listener);
        if (i >= 0)
            out[i] = now_ms() - t0;
    }
    exec_or_die(listener, "UNLISTEN *");
}

struct queue_client {
    const char *url;
    long done;
};

static void *queue_worker(void *arg)
{
    struct queue_client *qc = arg;
    PGconn *conn = connect_or_die(qc->url);
    PGresult *prep = PQprepare(conn, "claim",
                               "UPDATE tasker_bench.queue SET state = 'running', claimed_at = now() "
                               "WHERE id = (SELECT id FROM tasker_bench.queue WHERE state = 'ready' "
                               "ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id",
                               0, NULL);
    if (prep == NULL || PQresultStatus(prep) != PGRES_COMMAND_OK)
        die("prepare claim", conn);
    PQclear(prep);
    prep = PQprepare(conn, "complete",
                     "UPDATE tasker_bench.queue SET state = 'done', result = '{\"ok\":true}', "
                     "completed_at = now() WHERE id = $1",
                     1, NULL);
    if (prep == NULL || PQresultStatus(prep) != PGRES_COMMAND_OK)
        die("prepare complete", conn);
    PQclear(prep);

    for (;;) {
        PGresult *res = PQexecPrepared(conn, "claim", 0, NULL, NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
            die("claim", conn);
        if (PQntuples(res) == 0) {
            PQclear(res);
            break;
        }
        char id[32];
        snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        const char *params[1] = { id };
        res = PQexecPrepared(conn, "complete", 1, params, NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
            die("complete", conn);
        PQclear(res);
        qc->done++;
    }
    PQfinish(conn);
    return NULL;
}

static double probe_queue(PGconn *conn, const char *url, int rows)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO tasker_bench.queue (state) SELECT 'ready' FROM generate_series(1, %d)", rows);
    exec_or_die(conn, sql);
    exec_or_die(conn, "VACUUM ANALYZE tasker_bench.queue");

    struct queue_client clients[2] = { { url, 0 }, { url, 0 } };
    pthread_t threads[2];
    double t0 = now_ms();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&threads[i], NULL, queue_worker, &clients[i]) != 0) {
            fprintf(stderr, "floor: pthread_create failed\n");
            exit(1);
        }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    double seconds = (now_ms() - t0) / 1000.0;
    if (clients[0].done + clients[1].done != rows) {
        fprintf(stderr, "floor: queue drained %ld of %d rows\n", clients[0].done + clients[1].done, rows);
        exit(1);
    }
    return seconds;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: floor URL SAMPLES QUEUE_ROWS\n");
        return 2;
    }
    const char *url = argv[1];
    int n = atoi(argv[2]);
    int rows = atoi(argv[3]);
    if (n < 1 || rows < 1) {
        fprintf(stderr, "floor: SAMPLES and QUEUE_ROWS must be positive\n");
        return 2;
    }
    double *commit = calloc((size_t)n, sizeof *commit);
    double *notify = calloc((size_t)n, sizeof *notify);
    if (commit == NULL || notify == NULL)
        die("samples", NULL);

    PGconn *conn = connect_or_die(url);
    PGconn *listener = connect_or_die(url);
    exec_or_die(conn, "SET client_min_messages = warning");
    exec_or_die(conn, "DROP SCHEMA IF EXISTS tasker_bench CASCADE");
    exec_or_die(conn, "CREATE SCHEMA tasker_bench");
    exec_or_die(conn, "CREATE TABLE tasker_bench.commits (id bigserial PRIMARY KEY, v int NOT NULL, "
                      "at timestamptz NOT NULL DEFAULT now())");
    exec_or_die(conn, "CREATE TABLE tasker_bench.queue (id bigserial PRIMARY KEY, state text NOT NULL, "
                      "result jsonb, claimed_at timestamptz, completed_at timestamptz)");
    exec_or_die(conn, "CREATE INDEX ON tasker_bench.queue (id) WHERE state = 'ready'");

    probe_commit(conn, commit, n);
    probe_notify(conn, listener, notify, n);
    double seconds = probe_queue(conn, url, rows);

    printf("{");
    print_samples("commit_ms", commit, n);
    printf(",");
    print_samples("notify_rtt_ms", notify, n);
    printf(",\"queue_rows\": %d, \"queue_seconds\": %.4f, \"queue_rows_per_s\": %.1f}\n", rows, seconds,
           (double)rows / seconds);

    exec_or_die(conn, "DROP SCHEMA tasker_bench CASCADE");
    PQfinish(listener);
    PQfinish(conn);
    free(commit);
    free(notify);
    return 0;
}
