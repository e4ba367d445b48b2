/* httpsink.c - the webhook endpoint of bench/: counts POSTs and answers 200.
 *
 * One epoll loop, keep-alive connections, each request read whole (headers and
 * Content-Length body) and answered "200 OK" - at once, or --delay-ms later to
 * play a slow endpoint (responses wait in one FIFO: the delay is constant, so
 * FIFO order is due order). With --sequential 1 a connection's pipelined
 * requests are served one after another, as ordinary HTTP servers do: a
 * request's delay starts when the previous answer on its connection went out
 * (due order is then only per connection, so every wake-up scans the FIFO). When a body has "payload":"<20 digits>" (the
 * CLOCK_MONOTONIC ns stamp that bench/loadgen puts first in its payloads), the
 * publish-to-POST lag is recorded.
 *
 * usage: httpsink [--port P] [--delay-ms D] [--sequential 1]; prints "ready <port>", then obeys
 * stdin lines: "reset" zeroes the counters, "stats" prints them as one JSON
 * line; end of stdin ends the sink.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS_DIGITS 20
#define MAX_REQUEST (1024 * 1024)

typedef struct {
    int fd;
    unsigned gen;
    char *in;
    size_t len, cap;
    uint64_t busy_until; /* --sequential: when the last answer queued on this connection is due */
} conn_t;

typedef struct {
    conn_t *c;
    unsigned gen;
    uint64_t due;
} pending_t;

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                               "Connection: keep-alive\r\n\r\nok";

static struct {
    uint64_t posts, bad, bytes, first_ns, last_ns, conns_opened;
    uint64_t answered, answered_first_ns, answered_last_ns; /* responses written (delivered, to the sender) */
    uint64_t *lag;
    size_t nlag, caplag;
} st;

static pending_t *fifo;
static size_t fifo_head, fifo_len, fifo_cap;
static int ep, open_conns;
static uint64_t delay_ns;
static int sequential;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void close_conn(conn_t *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->gen++;
    c->len = 0;
    open_conns--;
}

static void respond(conn_t *c) {
    if (c->fd < 0) return;
    /* 150 bytes into an almost empty keep-alive socket: a short write means the client is gone. */
    if (write(c->fd, RESPONSE, sizeof RESPONSE - 1) != (ssize_t)(sizeof RESPONSE - 1)) {
        close_conn(c);
        return;
    }
    uint64_t now = now_ns();
    st.answered++;
    if (!st.answered_first_ns) st.answered_first_ns = now;
    st.answered_last_ns = now;
}

static void record(const char *body, size_t n, uint64_t now) {
    st.posts++;
    st.bytes += n;
    if (!st.first_ns) st.first_ns = now;
    st.last_ns = now;
    if (n < 2 || body[0] != '{' || body[n - 1] != '}') st.bad++;
    const char *key = memmem(body, n, "\"payload\":\"", 11);
    if (!key || (size_t)(body + n - key) < 11 + TS_DIGITS) return;
    uint64_t ts = 0;
    for (int k = 0; k < TS_DIGITS; k++) {
        char d = key[11 + k];
        if (d < '0' || d > '9') return;
        ts = ts * 10 + (d - '0');
    }
    if (st.nlag == st.caplag) {
        st.caplag = st.caplag ? st.caplag * 2 : 65536;
        st.lag = realloc(st.lag, st.caplag * sizeof *st.lag);
    }
    st.lag[st.nlag++] = now > ts ? now - ts : 0;
}

static size_t content_length(const char *head, size_t n) {
    for (const char *p = head; p + 15 < head + n; p++) {
        if ((p == head || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15)) return strtoul(p + 15, NULL, 10);
    }
    return 0;
}

static void on_readable(conn_t *c) {
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->in = realloc(c->in, c->cap);
    }
    ssize_t n = read(c->fd, c->in + c->len, c->cap - c->len);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) close_conn(c);
        return;
    }
    c->len += n;
    uint64_t now = now_ns();
    size_t p = 0;
    for (;;) {
        char *end = memmem(c->in + p, c->len - p, "\r\n\r\n", 4);
        if (!end) break;
        size_t head = end + 4 - (c->in + p), body = content_length(c->in + p, head);
        if (c->len - p < head + body) break;
        if (strncmp(c->in + p, "POST ", 5)) st.bad++;
        record(c->in + p + head, body, now);
        p += head + body;
        if (!delay_ns) {
            respond(c);
            if (c->fd < 0) return;
            continue;
        }
        if (fifo_len == fifo_cap) {
            size_t cap = fifo_cap ? fifo_cap * 2 : 1024;
            pending_t *nf = malloc(cap * sizeof *nf);
            for (size_t i = 0; i < fifo_len; i++) nf[i] = fifo[(fifo_head + i) % fifo_cap];
            free(fifo);
            fifo = nf;
            fifo_cap = cap;
            fifo_head = 0;
        }
        uint64_t due = now + delay_ns;
        if (sequential) {
            if (c->busy_until > now) due = c->busy_until + delay_ns;
            c->busy_until = due;
        }
        fifo[(fifo_head + fifo_len++) % fifo_cap] = (pending_t){c, c->gen, due};
    }
    memmove(c->in, c->in + p, c->len - p);
    c->len -= p;
    if (c->len > MAX_REQUEST) close_conn(c);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double lag_ms(double q) {
    return st.nlag ? st.lag[(size_t)(q * (st.nlag - 1) + 0.5)] / 1e6 : -1;
}

static void print_stats(void) {
    double span = st.last_ns > st.first_ns ? (st.last_ns - st.first_ns) / 1e9 : 0;
    double answered_span = st.answered_last_ns > st.answered_first_ns
                               ? (st.answered_last_ns - st.answered_first_ns) / 1e9 : 0;
    qsort(st.lag, st.nlag, sizeof *st.lag, cmp_u64);
    printf("{\"posts\":%lu,\"bad\":%lu,\"bytes\":%lu,\"span_s\":%.6f,\"posts_per_s\":%.1f,\"conns_opened\":%lu,"
           "\"open_conns\":%d,\"lag_samples\":%zu,\"lag_p50_ms\":%.3f,\"lag_p99_ms\":%.3f,\"lag_max_ms\":%.3f,"
           "\"answered\":%lu,\"answered_per_s\":%.1f}\n",
           st.posts, st.bad, st.bytes, span, span > 0 ? (st.posts - 1) / span : 0.0, st.conns_opened, open_conns,
           st.nlag, lag_ms(0.5), lag_ms(0.99), lag_ms(1.0), st.answered,
           answered_span > 0 ? (st.answered - 1) / answered_span : 0.0);
    fflush(stdout);
}

static int on_command(void) {
    static char line[256];
    static size_t len;
    ssize_t n = read(0, line + len, sizeof line - 1 - len);
    if (n <= 0) return 0;
    len += n;
    char *nl;
    while ((nl = memchr(line, '\n', len))) {
        *nl = 0;
        if (!strcmp(line, "stats")) print_stats();
        else if (!strcmp(line, "reset")) {
            uint64_t *lag = st.lag;
            size_t cap = st.caplag;
            memset(&st, 0, sizeof st);
            st.lag = lag;
            st.caplag = cap;
        }
        len -= nl + 1 - line;
        memmove(line, nl + 1, len);
    }
    if (len == sizeof line - 1) len = 0;
    return 1;
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--delay-ms")) delay_ns = strtoull(argv[i + 1], NULL, 10) * 1000000ull;
        else if (!strcmp(argv[i], "--sequential")) sequential = atoi(argv[i + 1]);
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is a failed write, not a death */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1024) < 0) {
        perror("httpsink: bind/listen");
        return 2;
    }
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    printf("ready %d\n", ntohs(a.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = 1}, sev = {.events = EPOLLIN, .data.u64 = 2};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
    struct epoll_event evs[256];
    for (;;) {
        int timeout = -1;
        if (fifo_len) {
            uint64_t now = now_ns(), due = fifo[fifo_head].due;
            for (size_t i = 1; sequential && i < fifo_len; i++)
                if (fifo[(fifo_head + i) % fifo_cap].due < due) due = fifo[(fifo_head + i) % fifo_cap].due;
            timeout = due > now ? (int)((due - now + 999999) / 1000000) : 0;
        }
        int n = epoll_wait(ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == 1) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    st.conns_opened++;
                    open_conns++;
                }
            } else if (evs[i].data.u64 == 2) {
                if (!on_command()) return 0;
            } else {
                conn_t *c = evs[i].data.ptr;
                if (c->fd >= 0) on_readable(c);
            }
        }
        uint64_t now = now_ns();
        while (fifo_len && fifo[fifo_head].due <= now) {
            pending_t *pd = &fifo[fifo_head];
            if (pd->c->gen == pd->gen) respond(pd->c);
            fifo_head = (fifo_head + 1) % fifo_cap;
            fifo_len--;
        }
        if (sequential) { /* answer every due entry, keep the others in their order */
            size_t kept = 0;
            for (size_t i = 0; i < fifo_len; i++) {
                pending_t pd = fifo[(fifo_head + i) % fifo_cap];
                if (pd.due > now) fifo[(fifo_head + kept++) % fifo_cap] = pd;
                else if (pd.c->gen == pd.gen) respond(pd.c);
            }
            fifo_len = kept;
        }
    }
}
