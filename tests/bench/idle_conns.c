/* idle_conns — N idle keep-alive connections to an HTTP server, for measuring what
 * an idle connection costs it.  Each connection sends one GET /healthz and reads
 * the answer (so the server has handled a request on it and keeps it for the next
 * one), then stays open and silent.  Prints "open=N" once all are open and answered,
 * then holds them for HOLD seconds (or until killed).  Opened in rounds of 200 so
 * the server's listen backlog never overflows.
 *
 *   idle_conns HOST PORT N HOLD   (needs `ulimit -n` above N) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ROUND = 200 };

static const char request[] =
    "GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n";

/* Reads until the end of the answer's headers plus a short body has arrived. */
static int read_answer(int fd)
{
    char buf[2048];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof buf - 1) {
        ssize_t n;
        if (poll(&p, 1, 10000) <= 0)
            return -1;
        n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") && strstr(buf, "}"))
            return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    long n, hold, open_n = 0;
    int *fds, rc = 1;
    if (argc != 5) {
        fprintf(stderr, "usage: idle_conns HOST PORT N HOLD\n");
        return 64;
    }
    n = strtol(argv[3], NULL, 10);
    hold = strtol(argv[4], NULL, 10);
    sa.sin_port = htons((unsigned short)strtol(argv[2], NULL, 10));
    if (n <= 0 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
        return 64;
    fds = calloc((size_t)n, sizeof *fds);
    if (!fds)
        return 70;
    while (open_n < n) {
        long from = open_n, to = open_n + ROUND < n ? open_n + ROUND : n;
        for (long i = from; i < to; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
                write(fds[i], request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) {
                perror("idle_conns: connect");
                goto out;
            }
        }
        for (long i = from; i < to; i++) {
            if (read_answer(fds[i]) != 0) {
                fprintf(stderr, "idle_conns: connection %ld got no 200\n", i);
                goto out;
            }
        }
        open_n = to;
    }
    printf("open=%ld\n", open_n);
    fflush(stdout);
    sleep((unsigned)hold);
    rc = 0;
out:
    free(fds); /* the descriptors close at exit */
    return rc;
}
