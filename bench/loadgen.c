/* loadgen.c - the MQTT 3.1.1 load generator of bench/.
 *
 * Why C: the generator must never be the bottleneck. One process drives every
 * connection of a scenario from one epoll loop, with packets encoded once and
 * copied into per-socket output buffers (only the packet id and, for latency,
 * the timestamp are patched), so one core pushes several times what a broker
 * on the other core can take. Every load is bounded by --count and --duration;
 * draining stops after --stall seconds without progress or --drain seconds.
 *
 * Modes (first argument); each prints one JSON line on stdout:
 *   fanin   --pubs P publishers -> 1 subscriber, closed loop: at most --window
 *           messages sent and not yet received (and, QoS 1, not yet acked).
 *   fanout  1 publisher -> --subs S subscribers, closed loop: at most --window
 *           deliveries outstanding. The rate reported is deliveries/s.
 *   latency 1 publisher -> --subs (0 or 1) subscriber, paced at --rate msgs/s by
 *           a timerfd (--spin 1: a busy loop); the payload starts with the send
 *           time (CLOCK_MONOTONIC ns, 20 ASCII digits) so the subscriber, or
 *           the webhook sink, computes the delay.
 *   flood   --pubs P publishers -> 1 subscriber, open loop: publishers write as
 *           fast as their sockets take and never wait for an ack.
 *   conns   --conns N idle clients, --concurrency handshakes at a time: prints
 *           the connect rate, then holds them until stdin closes (at most
 *           --hold s) and prints how many the broker dropped meanwhile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TS_DIGITS 20
#define OUT_HIGH_WATER (64 * 1024)
#define SUB_READ_CHUNK (256 * 1024)

typedef struct {
    uint8_t *data;
    size_t len, cap, off;
} buf_t;

/* ST_OPEN is every publisher/subscriber once set up; conns mode walks the others. */
enum { ST_OPEN, ST_UNSTARTED, ST_CONNECTING, ST_AWAIT_CONNACK, ST_UP, ST_DEAD };

typedef struct {
    int fd;
    int is_sub;
    int epoll_out;
    int state;
    int counted; /* conns mode: already counted as connected or failed */
    size_t read_chunk;
    uint16_t next_id;
    buf_t in, out;
} conn_t;

static struct {
    const char *mode, *host, *topic;
    int port, qos, size, pubs, subs, window, rate, conns, concurrency, keepalive;
    long count;
    int spin;
    double duration, stall, hold, warmup, drain;
    int persist; /* --persist 1: subscribers connect with clean session 0 (a persistent session) */
    int sub_port; /* --sub_port P: subscribers connect to this port (a bridge's upstream), publishers to --port */
} opt = {"", "127.0.0.1", "bench/t", 1883, 0, 64, 8, 1, 500, 1000, 1000, 200, 300, 100000, 0, 10.0, 2.0, 600.0, 0.5, 30.0};

static struct {
    uint64_t sent, received, acked, closed;
    uint64_t *lat;
    size_t nlat, caplat;
    uint64_t t_first_send, t_last_send, t_last_recv, t0;
    int record_latency;
} g;

static int ep;
static conn_t *pubs_c, *subs_c;
static uint8_t *tmpl;
static size_t tmpl_len, tmpl_id_off, tmpl_payload_off;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    if (b->off) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) die("realloc");
    b->cap = cap;
}

static void buf_put(buf_t *b, const void *p, size_t n) {
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static size_t put_varint(uint8_t *p, size_t v) {
    size_t i = 0;
    do {
        uint8_t byte = v % 128;
        v /= 128;
        p[i++] = byte | (v ? 0x80 : 0);
    } while (v);
    return i;
}

static size_t encode_connect(uint8_t *p, const char *client_id, int keepalive) {
    size_t idl = strlen(client_id), rl = 10 + 2 + idl, i = 0;
    p[i++] = 0x10;
    i += put_varint(p + i, rl);
    const uint8_t var[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, (uint8_t)(keepalive >> 8), (uint8_t)keepalive};
    memcpy(p + i, var, sizeof var);
    i += sizeof var;
    p[i++] = idl >> 8;
    p[i++] = idl & 0xff;
    memcpy(p + i, client_id, idl);
    return i + idl;
}

static size_t encode_subscribe(uint8_t *p, const char *filter, int qos) {
    size_t fl = strlen(filter), rl = 2 + 2 + fl + 1, i = 0;
    p[i++] = 0x82;
    i += put_varint(p + i, rl);
    p[i++] = 0;
    p[i++] = 1;
    p[i++] = fl >> 8;
    p[i++] = fl & 0xff;
    memcpy(p + i, filter, fl);
    i += fl;
    p[i++] = qos;
    return i;
}

/* One PUBLISH template per run: later copies patch only the id and timestamp. */
static void build_publish_template(void) {
    size_t tl = strlen(opt.topic), rl = 2 + tl + (opt.qos ? 2 : 0) + opt.size, i = 0;
    tmpl = malloc(rl + 8);
    tmpl[i++] = 0x30 | (opt.qos << 1);
    i += put_varint(tmpl + i, rl);
    tmpl[i++] = tl >> 8;
    tmpl[i++] = tl & 0xff;
    memcpy(tmpl + i, opt.topic, tl);
    i += tl;
    tmpl_id_off = i;
    if (opt.qos) {
        tmpl[i++] = 0;
        tmpl[i++] = 1;
    }
    tmpl_payload_off = i;
    memset(tmpl + i, 'x', opt.size);
    tmpl_len = i + opt.size;
}

static void put_timestamp(uint8_t *p, uint64_t ts) {
    for (int k = TS_DIGITS - 1; k >= 0; k--) {
        p[k] = '0' + ts % 10;
        ts /= 10;
    }
}

static void append_publish(conn_t *c, uint64_t ts) {
    buf_reserve(&c->out, tmpl_len);
    uint8_t *p = c->out.data + c->out.len;
    memcpy(p, tmpl, tmpl_len);
    if (opt.qos) {
        if (++c->next_id == 0) c->next_id = 1;
        p[tmpl_id_off] = c->next_id >> 8;
        p[tmpl_id_off + 1] = c->next_id & 0xff;
    }
    if (ts && opt.size >= TS_DIGITS) put_timestamp(p + tmpl_payload_off, ts);
    c->out.len += tmpl_len;
}

static void set_epoll(conn_t *c, int want_out) {
    if (c->epoll_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
    c->epoll_out = want_out;
}

static void flush_out(conn_t *c) {
    while (c->out.off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + c->out.off, c->out.len - c->out.off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            c->out.off = c->out.len = 0; /* peer gone: counted by the read side */
            break;
        }
        c->out.off += n;
    }
    if (c->out.off == c->out.len) c->out.off = c->out.len = 0;
    set_epoll(c, c->out.len > 0);
}

static size_t pending_out(conn_t *c) { return c->out.len - c->out.off; }

static uint64_t parse_timestamp(const uint8_t *p, size_t n) {
    if (n < TS_DIGITS) return 0;
    uint64_t v = 0;
    for (int k = 0; k < TS_DIGITS; k++) {
        if (p[k] < '0' || p[k] > '9') return 0;
        v = v * 10 + (p[k] - '0');
    }
    return v;
}

static void record_latency(uint64_t ts, uint64_t now) {
    if (!ts || ts < g.t0 + (uint64_t)(opt.warmup * 1e9)) return;
    if (g.nlat == g.caplat) {
        g.caplat = g.caplat ? g.caplat * 2 : 65536;
        g.lat = realloc(g.lat, g.caplat * sizeof *g.lat);
    }
    g.lat[g.nlat++] = now > ts ? now - ts : 0;
}

static void handle_packet(conn_t *c, uint8_t h, const uint8_t *body, size_t rl, uint64_t now) {
    switch (h >> 4) {
    case 3: { /* PUBLISH */
        int qos = (h >> 1) & 3;
        if (rl < 2) return;
        size_t pos = 2 + ((size_t)body[0] << 8 | body[1]);
        if (pos + (qos ? 2 : 0) > rl) return;
        if (qos) {
            uint8_t ack[4] = {0x40, 2, body[pos], body[pos + 1]};
            buf_put(&c->out, ack, 4);
            pos += 2;
        }
        g.received++;
        g.t_last_recv = now;
        if (g.record_latency) record_latency(parse_timestamp(body + pos, rl - pos), now);
        break;
    }
    case 4: /* PUBACK */
        g.acked++;
        break;
    case 2: /* CONNACK (conns mode) */
        if (c->state == ST_AWAIT_CONNACK) c->state = (rl >= 2 && body[1] == 0) ? ST_UP : ST_DEAD;
        break;
    default: /* SUBACK, PINGRESP: nothing to do */
        break;
    }
}

/* Reads what is there once (level-triggered epoll calls again) and handles every whole packet. */
static void on_readable(conn_t *c, uint64_t now) {
    buf_reserve(&c->in, c->read_chunk ? c->read_chunk : 256);
    ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        g.closed++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        c->state = ST_DEAD;
        return;
    }
    c->in.len += n;
    size_t p = c->in.off;
    while (c->in.len - p >= 2) {
        size_t rl = 0, mult = 1, k = 1;
        int complete = 0;
        while (p + k < c->in.len && k <= 4) {
            uint8_t b = c->in.data[p + k++];
            rl += (b & 127) * mult;
            mult *= 128;
            if (!(b & 128)) {
                complete = 1;
                break;
            }
        }
        if (!complete || c->in.len - p < k + rl) break;
        handle_packet(c, c->in.data[p], c->in.data + p + k, rl, now);
        p += k + rl;
    }
    c->in.off = p;
    if (c->in.off == c->in.len) c->in.off = c->in.len = 0;
    if (pending_out(c)) flush_out(c);
}

static int tcp_socket(int blocking) {
    int fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static struct sockaddr_in broker_addr(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    return a;
}

static void read_exact(int fd, uint8_t *p, size_t n, const char *what) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) {
            fprintf(stderr, "loadgen: no %s from broker\n", what);
            exit(3);
        }
        got += r;
    }
}

/* Blocking handshake (a few connections only), then the socket joins the epoll loop. */
static void open_client(conn_t *c, int index, const char *filter) {
    int fd = tcp_socket(1);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = broker_addr();
    if (filter && opt.sub_port) a.sin_port = htons(opt.sub_port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    uint8_t pkt[512], resp[8];
    char cid[64];
    snprintf(cid, sizeof cid, "lg%d-%s-%d", getpid(), filter ? "s" : "p", index);
    size_t n = encode_connect(pkt, cid, opt.keepalive);
    if (filter && opt.persist) pkt[9] = 0x00; /* the connect flags byte: clean session off */
    if (write(fd, pkt, n) != (ssize_t)n) die("write CONNECT");
    read_exact(fd, resp, 4, "CONNACK");
    if (resp[0] != 0x20 || resp[3] != 0) {
        fprintf(stderr, "loadgen: CONNACK refused (%d)\n", resp[3]);
        exit(3);
    }
    if (filter) {
        n = encode_subscribe(pkt, filter, opt.qos);
        if (write(fd, pkt, n) != (ssize_t)n) die("write SUBSCRIBE");
        read_exact(fd, resp, 5, "SUBACK");
        if (resp[0] != 0x90 || resp[4] == 0x80) {
            fprintf(stderr, "loadgen: SUBACK refused\n");
            exit(3);
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
    c->is_sub = filter != NULL;
    c->read_chunk = c->is_sub ? SUB_READ_CHUNK : 16384;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add");
}

static void close_client(conn_t *c) {
    if (c->state != ST_DEAD) {
        static const uint8_t disconnect[2] = {0xe0, 0};
        buf_put(&c->out, disconnect, 2);
        flush_out(c);
    }
    close(c->fd);
}

static void raise_nofile(long need) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    if ((long)r.rlim_cur >= need) return;
    r.rlim_cur = need;
    if ((long)r.rlim_max < need) r.rlim_max = need;
    if (setrlimit(RLIMIT_NOFILE, &r) < 0) die("setrlimit NOFILE (need root or a higher hard limit)");
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double send_late_p99_us = -1, send_late_max_us = -1;

/* CPU time of this process (user + system, which includes the softirq work of loopback
 * TCP done on its core): compared with wall time it shows whether the generator was
 * saturated or waiting on the broker. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double pct_us(double q) {
    if (!g.nlat) return -1;
    size_t i = (size_t)(q * (g.nlat - 1) + 0.5);
    return g.lat[i] / 1000.0;
}

static double measure_cpu0, measure_t0;

static void print_result(uint64_t expected) {
    double wall = (now_ns() - measure_t0) / 1e9, busy = wall > 0 ? 100 * (cpu_seconds() - measure_cpu0) / wall : 0;
    double elapsed = g.t_last_recv > g.t_first_send ? (g.t_last_recv - g.t_first_send) / 1e9 : 0;
    printf("{\"mode\":\"%s\",\"qos\":%d,\"size\":%d,\"pubs\":%d,\"subs\":%d,\"sent\":%lu,\"expected\":%lu,"
           "\"received\":%lu,\"acked\":%lu,\"closed\":%lu,\"elapsed_s\":%.6f,\"rate\":%.1f,"
           "\"send_elapsed_s\":%.6f",
           opt.mode, opt.qos, opt.size, opt.pubs, opt.subs, g.sent, expected, g.received, g.acked, g.closed,
           elapsed, elapsed > 0 ? g.received / elapsed : 0.0,
           g.t_last_send > g.t_first_send ? (g.t_last_send - g.t_first_send) / 1e9 : 0.0);
    if (g.nlat) {
        qsort(g.lat, g.nlat, sizeof *g.lat, cmp_u64);
        printf(",\"samples\":%zu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f",
               g.nlat, pct_us(0.5), pct_us(0.9), pct_us(0.99), pct_us(0.999), pct_us(1.0));
    }
    printf(",\"loadgen_cpu_pct\":%.1f", busy);
    if (send_late_max_us >= 0)
        printf(",\"send_late_p99_us\":%.1f,\"send_late_max_us\":%.1f", send_late_p99_us, send_late_max_us);
    printf("}\n");
    fflush(stdout);
}

/* How many more messages the closed loop allows right now. */
static long allowance(void) {
    long left = opt.count - (long)g.sent;
    if (!strcmp(opt.mode, "flood")) return left;
    if (!strcmp(opt.mode, "fanout")) {
        long outstanding = (long)(g.sent * opt.subs - g.received);
        long more = (opt.window - outstanding) / opt.subs;
        return more < left ? more : left;
    }
    uint64_t done = g.received;
    if (opt.qos && g.acked < done) done = g.acked;
    long more = opt.window - (long)(g.sent - done);
    return more < left ? more : left;
}

/* Spreads the allowance over publishers, keeping each socket's unsent backlog small.
 * Returns whether some publisher could still take more without waiting for EPOLLOUT. */
static int top_up(long allow, uint64_t now) {
    int npub = opt.pubs;
    long chunk = allow / npub + 1;
    for (int i = 0; i < npub && allow > 0; i++) {
        conn_t *c = &pubs_c[i];
        if (c->state == ST_DEAD) continue;
        long k = chunk < allow ? chunk : allow;
        while (k > 0 && pending_out(c) < OUT_HIGH_WATER) {
            append_publish(c, 0);
            k--;
            allow--;
            g.sent++;
        }
        if (!g.t_first_send && g.sent) g.t_first_send = now;
        flush_out(c);
    }
    g.t_last_send = now;
    for (int i = 0; i < npub; i++)
        if (pubs_c[i].state != ST_DEAD && pending_out(&pubs_c[i]) < OUT_HIGH_WATER) return 1;
    return 0;
}

static void open_pub_sub(int npub, int nsub, const char *filter) {
    pubs_c = calloc(npub ? npub : 1, sizeof *pubs_c);
    subs_c = calloc(nsub ? nsub : 1, sizeof *subs_c);
    for (int i = 0; i < nsub; i++) open_client(&subs_c[i], i, filter);
    for (int i = 0; i < npub; i++) open_client(&pubs_c[i], nsub + i, NULL);
}

static void close_all(int npub, int nsub) {
    for (int i = 0; i < npub; i++) close_client(&pubs_c[i]);
    for (int i = 0; i < nsub; i++) close_client(&subs_c[i]);
}

static void dispatch(struct epoll_event *evs, int n, uint64_t now) {
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (!c) continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c, now);
        if (c->state != ST_DEAD && (evs[i].events & EPOLLOUT)) flush_out(c);
    }
}

static int all_done(uint64_t expected) {
    return g.received >= expected && (!opt.qos || g.acked >= g.sent);
}

/* fanin, fanout, flood: send until count or duration, then drain until done or stalled. */
static void run_throughput(void) {
    int npub = !strcmp(opt.mode, "fanout") ? 1 : opt.pubs;
    int nsub = !strcmp(opt.mode, "fanout") ? opt.subs : 1;
    opt.pubs = npub;
    opt.subs = nsub;
    raise_nofile(npub + nsub + 64);
    build_publish_template();
    open_pub_sub(npub, nsub, opt.topic);
    struct epoll_event evs[256];
    uint64_t start = now_ns(), send_end = start + (uint64_t)(opt.duration * 1e9);
    measure_t0 = start;
    measure_cpu0 = cpu_seconds();
    uint64_t last_progress = start, last_seen = 0;
    g.t0 = start;
    for (;;) {
        uint64_t now = now_ns();
        int sending = (long)g.sent < opt.count && now < send_end, busy = 0;
        if (sending) {
            long allow = allowance();
            if (allow > 0) busy = top_up(allow, now) && allowance() > 0;
        }
        uint64_t expected = g.sent * nsub;
        if (!sending && all_done(expected)) break;
        if (!sending && now > g.t_last_send + (uint64_t)(opt.drain * 1e9)) break;
        if (g.received + g.acked != last_seen) {
            last_seen = g.received + g.acked;
            last_progress = now;
        } else if (now - last_progress > (uint64_t)(opt.stall * 1e9)) {
            break;
        }
        int n = epoll_wait(ep, evs, 256, busy ? 0 : 5);
        dispatch(evs, n, now_ns());
    }
    print_result(g.sent * nsub);
    close_all(npub, nsub);
}

/* Paced publisher: message i is due at t0 + (i+1)/rate; a periodic timerfd (or, with
 * --spin 1, a busy loop that takes the generator's own wake-up delay out of the
 * figures) releases every message whose time has come. Each carries its actual
 * send time; how late the generator itself sent is reported as send_late_*. */
static void run_latency(void) {
    int nsub = opt.subs > 0 ? 1 : 0;
    opt.pubs = 1;
    opt.subs = nsub;
    if (opt.size < TS_DIGITS) opt.size = TS_DIGITS;
    build_publish_template();
    open_pub_sub(1, nsub, opt.topic);
    long total = opt.count;
    if ((double)total > opt.rate * opt.duration) total = (long)(opt.rate * opt.duration);
    uint64_t period = 1000000000ull / opt.rate, *late = calloc(total + 1, sizeof *late);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec its = {.it_interval = {0, (long)period}, .it_value = {0, (long)period}};
    if (period >= 1000000000ull) its.it_interval = its.it_value = (struct timespec){1, 0};
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    if (!opt.spin) epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    g.t0 = now_ns();
    g.t_first_send = g.t0;
    g.record_latency = 1;
    measure_t0 = g.t0;
    measure_cpu0 = cpu_seconds();
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event evs[64];
    uint64_t last_progress = 0, last_seen = 0, ticks;
    for (;;) {
        int n = epoll_wait(ep, evs, 64, opt.spin ? 0 : 5);
        uint64_t now = now_ns();
        if (!opt.spin && read(tfd, &ticks, sizeof ticks) < 0) ticks = 0;
        uint64_t due = (now - g.t0) / period;
        if ((long)g.sent < total && g.sent < due) {
            while ((long)g.sent < total && g.sent < due) {
                late[g.sent] = now - (g.t0 + (g.sent + 1) * period);
                append_publish(&pubs_c[0], now);
                g.sent++;
            }
            g.t_last_send = now;
            flush_out(&pubs_c[0]);
        }
        dispatch(evs, n, now);
        if ((long)g.sent < total) {
            last_progress = now;
            continue;
        }
        if (all_done(g.sent * nsub)) break;
        if (now > g.t_last_send + (uint64_t)(opt.drain * 1e9)) break;
        if (g.received + g.acked != last_seen) {
            last_seen = g.received + g.acked;
            last_progress = now;
        } else if (now - last_progress > (uint64_t)(opt.stall * 1e9)) {
            break;
        }
    }
    if (!nsub) g.t_last_recv = now_ns();
    qsort(late, g.sent, sizeof *late, cmp_u64);
    if (g.sent) {
        send_late_p99_us = late[(size_t)(0.99 * (g.sent - 1))] / 1000.0;
        send_late_max_us = late[g.sent - 1] / 1000.0;
    }
    print_result(g.sent * nsub);
    close_all(1, nsub);
}

static void conn_drop(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = ST_DEAD;
}

/* Idle clients skip TCP_NODELAY: one syscall less per connection. */
static int write_connect(conn_t *c, int index) {
    uint8_t pkt[128];
    char cid[48];
    snprintf(cid, sizeof cid, "idle%d-%d", getpid(), index);
    size_t n = encode_connect(pkt, cid, opt.keepalive);
    return write(c->fd, pkt, n) == (ssize_t)n;
}

/* On loopback the handshake has usually completed inside connect(): CONNECT goes out at
 * once and the socket joins epoll only to read CONNACK; otherwise it waits for EPOLLOUT. */
static void conn_start(conn_t *c, int index, const struct sockaddr_in *a) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    if (connect(c->fd, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
        conn_drop(c);
        return;
    }
    c->state = write_connect(c, index) ? ST_AWAIT_CONNACK : ST_CONNECTING;
    struct epoll_event ev = {.events = c->state == ST_AWAIT_CONNACK ? EPOLLIN : EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_send_connect(conn_t *c, int index) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || !write_connect(c, index)) {
        conn_drop(c);
        return;
    }
    c->state = ST_AWAIT_CONNACK;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* conns: opens N clients with a bounded number of handshakes in flight, then holds them. */
static void run_conns(void) {
    long n = opt.conns;
    raise_nofile(n + 64);
    conn_t *cs = calloc(n, sizeof *cs);
    for (long i = 0; i < n; i++) {
        cs[i].fd = -1;
        cs[i].state = ST_UNSTARTED;
    }
    struct sockaddr_in a = broker_addr();
    struct epoll_event evs[512];
    long started = 0, up = 0, failed = 0, handshaking = 0;
    uint64_t start = now_ns(), deadline = start + (uint64_t)(opt.duration * 1e9);
    double cpu0 = cpu_seconds();
    while (up + failed < n && now_ns() < deadline) {
        while (started < n && handshaking < opt.concurrency) {
            conn_t *c = &cs[started];
            conn_start(c, (int)started++, &a);
            c->counted = c->state == ST_DEAD;
            if (c->counted) failed++;
            else handshaking++;
        }
        int k = epoll_wait(ep, evs, 512, 5);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->state == ST_CONNECTING) conn_send_connect(c, (int)(c - cs));
            else if (c->state == ST_AWAIT_CONNACK) on_readable(c, now_ns());
            if (c->counted || (c->state != ST_UP && c->state != ST_DEAD)) continue;
            c->counted = 1;
            handshaking--;
            if (c->state == ST_UP) {
                up++;
            } else {
                failed++;
                conn_drop(c);
            }
        }
    }
    double elapsed = (now_ns() - start) / 1e9, busy = elapsed > 0 ? 100 * (cpu_seconds() - cpu0) / elapsed : 0;
    printf("{\"mode\":\"conns\",\"conns\":%ld,\"connected\":%ld,\"failed\":%ld,\"elapsed_s\":%.6f,\"rate\":%.1f,"
           "\"loadgen_cpu_pct\":%.1f}\n",
           n, up, failed, elapsed, elapsed > 0 ? up / elapsed : 0.0, busy);
    fflush(stdout);

    /* Hold: count drops, ping at keepalive/2, stop when stdin closes or --hold expires. */
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    int holding = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) == 0; /* stdin a file or /dev/null: no hold */
    uint64_t hold_end = now_ns() + (uint64_t)(opt.hold * 1e9), ping_every = opt.keepalive * 500000000ull;
    uint64_t next_ping = now_ns() + ping_every;
    long dropped = 0;
    while (holding && now_ns() < hold_end) {
        int k = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                holding = 0;
            } else if (c->state == ST_UP) {
                on_readable(c, now_ns());
                if (c->state == ST_DEAD) dropped++;
            } else if (c->state != ST_AWAIT_CONNACK) {
                conn_drop(c); /* a late handshake, or a broker closing one it refused */
            } else {
                on_readable(c, now_ns());
            }
        }
        if (ping_every && now_ns() >= next_ping) {
            static const uint8_t ping[2] = {0xc0, 0};
            for (long i = 0; i < n; i++)
                if (cs[i].state == ST_UP && write(cs[i].fd, ping, 2) != 2) cs[i].state = ST_DEAD;
            next_ping += ping_every;
        }
    }
    /* RST, not FIN: 10k closes per load would otherwise leave 10k TIME_WAIT ports behind. */
    struct linger lg = {1, 0};
    for (long i = 0; i < n; i++) {
        if (cs[i].fd >= 0) {
            setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(cs[i].fd);
        }
    }
    printf("{\"mode\":\"conns_hold\",\"dropped\":%ld}\n", dropped);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen fanin|fanout|latency|flood|conns [--host H] [--port P] [--topic T] [--qos Q]\n"
            "  [--size B] [--pubs P] [--subs S] [--count N] [--duration S] [--window W] [--rate R]\n"
            "  [--stall S] [--drain S] [--warmup S] [--conns N] [--concurrency C] [--hold S] [--keepalive S]\n"
            "  [--persist 1] [--sub_port P]\n");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    opt.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) opt.host = v;
        else if (!strcmp(k, "--port")) opt.port = atoi(v);
        else if (!strcmp(k, "--topic")) opt.topic = v;
        else if (!strcmp(k, "--qos")) opt.qos = atoi(v);
        else if (!strcmp(k, "--size")) opt.size = atoi(v);
        else if (!strcmp(k, "--pubs")) opt.pubs = atoi(v);
        else if (!strcmp(k, "--subs")) opt.subs = atoi(v);
        else if (!strcmp(k, "--count")) opt.count = atol(v);
        else if (!strcmp(k, "--duration")) opt.duration = atof(v);
        else if (!strcmp(k, "--window")) opt.window = atoi(v);
        else if (!strcmp(k, "--rate")) opt.rate = atoi(v);
        else if (!strcmp(k, "--stall")) opt.stall = atof(v);
        else if (!strcmp(k, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(k, "--drain")) opt.drain = atof(v);
        else if (!strcmp(k, "--spin")) opt.spin = atoi(v);
        else if (!strcmp(k, "--conns")) opt.conns = atoi(v);
        else if (!strcmp(k, "--concurrency")) opt.concurrency = atoi(v);
        else if (!strcmp(k, "--hold")) opt.hold = atof(v);
        else if (!strcmp(k, "--keepalive")) opt.keepalive = atoi(v);
        else if (!strcmp(k, "--persist")) opt.persist = atoi(v);
        else if (!strcmp(k, "--sub_port")) opt.sub_port = atoi(v);
        else usage();
    }
    if (opt.qos < 0 || opt.qos > 1 || opt.pubs < 1 || opt.rate < 1 || opt.window < 1) usage();
    signal(SIGPIPE, SIG_IGN); /* a broker closing on us shows up as a failed write, not a death */
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    if (!strcmp(opt.mode, "fanin") || !strcmp(opt.mode, "fanout") || !strcmp(opt.mode, "flood")) run_throughput();
    else if (!strcmp(opt.mode, "latency")) run_latency();
    else if (!strcmp(opt.mode, "conns")) run_conns();
    else usage();
    return 0;
}
