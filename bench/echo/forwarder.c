/* forwarder.c - the trivial "broker" that measures the load generator's ceiling.
 *
 * It speaks just enough MQTT 3.1.1 for bench/loadgen: CONNECT -> CONNACK,
 * SUBSCRIBE -> SUBACK (granting the asked QoS), PINGREQ -> PINGRESP, PUBLISH
 * QoS 1 -> PUBACK, and every PUBLISH is copied byte for byte to every
 * subscriber (topics are ignored; a subscriber's PUBACKs are dropped). No
 * sessions, no matching, no queue limits: whatever rate loadgen reaches against
 * it is the most loadgen can drive, to compare with the brokers.
 *
 * usage: forwarder [port]   (port 0 or absent: any free port); prints "ready <port>".
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
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)

typedef struct {
    uint8_t *data;
    size_t len, cap, off;
} buf_t;

typedef struct conn {
    int fd, is_sub, dirty, epoll_out;
    size_t read_chunk; /* small for a handshake, READ_CHUNK once a read fills it */
    buf_t in, out;
} conn_t;

static int ep;
static conn_t **subs;
static int nsubs, capsubs;
static conn_t **dirty;
static int ndirty, capdirty;

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
    if (!b->data) abort();
    b->cap = cap;
}

static void mark_dirty(conn_t *c) {
    if (c->dirty) return;
    if (ndirty == capdirty) {
        capdirty = capdirty ? capdirty * 2 : 256;
        dirty = realloc(dirty, capdirty * sizeof *dirty);
    }
    dirty[ndirty++] = c;
    c->dirty = 1;
}

static void put(conn_t *c, const void *p, size_t n) {
    buf_reserve(&c->out, n);
    memcpy(c->out.data + c->out.len, p, n);
    c->out.len += n;
    mark_dirty(c);
}

static void drop(conn_t *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    for (int i = 0; i < nsubs; i++)
        if (subs[i] == c) subs[i] = subs[--nsubs];
}

static void flush(conn_t *c) {
    while (c->fd >= 0 && c->out.off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + c->out.off, c->out.len - c->out.off);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) drop(c);
            break;
        }
        c->out.off += n;
    }
    if (c->out.off == c->out.len) c->out.off = c->out.len = 0;
    int want = c->out.len > 0;
    if (c->fd >= 0 && want != c->epoll_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->epoll_out = want;
    }
}

static void on_packet(conn_t *c, const uint8_t *frame, size_t hdr, size_t rl) {
    const uint8_t *body = frame + hdr;
    switch (frame[0] >> 4) {
    case 1: {
        static const uint8_t connack[4] = {0x20, 2, 0, 0};
        put(c, connack, 4);
        break;
    }
    case 3: {
        int qos = (frame[0] >> 1) & 3;
        if (qos && rl >= 4) {
            size_t pos = 2 + ((size_t)body[0] << 8 | body[1]);
            uint8_t ack[4] = {0x40, 2, body[pos], body[pos + 1]};
            put(c, ack, 4);
        }
        for (int i = 0; i < nsubs; i++) put(subs[i], frame, hdr + rl);
        break;
    }
    case 8: {
        uint8_t ack[64] = {0x90, 0, body[0], body[1]};
        size_t pos = 2, n = 4;
        while (pos + 2 < rl && n < sizeof ack) {
            pos += 2 + ((size_t)body[pos] << 8 | body[pos + 1]);
            ack[n++] = pos < rl ? body[pos] & 3 : 0x80;
            pos++;
        }
        ack[1] = n - 2;
        put(c, ack, n);
        if (!c->is_sub) {
            if (nsubs == capsubs) {
                capsubs = capsubs ? capsubs * 2 : 64;
                subs = realloc(subs, capsubs * sizeof *subs);
            }
            subs[nsubs++] = c;
            c->is_sub = 1;
        }
        break;
    }
    case 12: {
        static const uint8_t pingresp[2] = {0xd0, 0};
        put(c, pingresp, 2);
        break;
    }
    case 14:
        drop(c);
        break;
    default:
        break;
    }
}

static void on_readable(conn_t *c) {
    if (!c->read_chunk) c->read_chunk = 2048;
    buf_reserve(&c->in, c->read_chunk);
    ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) drop(c);
        return;
    }
    if ((size_t)n == c->in.cap - c->in.len) c->read_chunk = READ_CHUNK;
    c->in.len += n;
    size_t p = c->in.off;
    while (c->fd >= 0 && c->in.len - p >= 2) {
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
        on_packet(c, c->in.data + p, k, rl);
        p += k + rl;
    }
    c->in.off = p;
    if (c->in.off == c->in.len) c->in.off = c->in.len = 0;
}

int main(int argc, char **argv) {
    struct rlimit r = {65536, 65536};
    setrlimit(RLIMIT_NOFILE, &r);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is a failed write, not a death */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
        perror("forwarder: bind/listen");
        return 2;
    }
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    printf("ready %d\n", ntohs(a.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->fd < 0) continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) mark_dirty(c);
        }
        /* Write once per wake-up, after every read of this round has been forwarded. */
        for (int i = 0; i < ndirty; i++) {
            dirty[i]->dirty = 0;
            flush(dirty[i]);
        }
        ndirty = 0;
    }
}
