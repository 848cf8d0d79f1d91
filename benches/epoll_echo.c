/*
 * A plain epoll WebSocket echo client: the yardstick for benches/load.
 *
 *   cc -O2 -o target/epoll_echo benches/epoll_echo.c
 *   taskset -c 1 target/epoll_echo 127.0.0.1 3000 /shout 100 20 1 2 5
 *                                  host      port path  conns size inflight warmup-s measured-s
 *
 * N connections, each keeping `inflight` masked text frames of `size` bytes
 * in flight: every frame that comes back is answered with a new one. One
 * thread, level-triggered epoll, one read and at most one write per ready
 * connection. Prints messages per second and the client's own CPU use, so
 * benches/compare.sh can show whether benches/load (tokio, one thread) is
 * slower than the simplest client that could exist. Bounded: it stops after
 * warm-up + measured seconds. Loopback only (it takes an IPv4 address).
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

struct conn {
    int fd;
    size_t have; /* bytes in buf not yet parsed */
    unsigned char buf[BUF];
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Connect and upgrade; blocking until the 101 arrived. */
static int open_conn(const char *host, int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "epoll_echo: %s is not an IPv4 address\n", host);
        exit(2);
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port);
    if (write(fd, req, n) != n) die("write handshake");
    char resp[4096];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r <= 0) die("read handshake");
        got += r;
        resp[got] = 0;
        if (strstr(resp, "\r\n\r\n")) break;
    }
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "epoll_echo: no upgrade: %.40s\n", resp);
        exit(1);
    }
    /* Frames that came with the 101 are not expected on an echo route. */
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: epoll_echo HOST PORT PATH CONNS SIZE INFLIGHT WARMUP_S MEASURED_S\n");
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), conns = atoi(argv[4]), size = atoi(argv[5]), inflight = atoi(argv[6]);
    double warmup = atof(argv[7]), measured = atof(argv[8]);
    if (conns < 1 || size < 1 || size > 125 || inflight < 1 || inflight > 64 || measured <= 0) {
        fprintf(stderr, "epoll_echo: conns ≥ 1, size 1-125, inflight 1-64, measured > 0\n");
        return 2;
    }

    /* One masked text frame, built once: FIN+text, MASK+len, key, payload. */
    unsigned char frame[6 + 125];
    const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    frame[0] = 0x81;
    frame[1] = 0x80 | size;
    memcpy(frame + 2, key, 4);
    for (int i = 0; i < size; i++) frame[6 + i] = 'x' ^ key[i % 4];
    size_t flen = 6 + size;
    unsigned char burst[64 * (6 + 125)];
    for (int i = 0; i < inflight; i++) memcpy(burst + i * flen, frame, flen);

    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct conn *cs = calloc(conns, sizeof *cs);
    if (!cs) die("calloc");
    for (int i = 0; i < conns; i++) {
        cs[i].fd = open_conn(host, port, path);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
        if (write(cs[i].fd, burst, flen * inflight) != (ssize_t)(flen * inflight)) die("write");
    }

    uint64_t count = 0, at_start = 0;
    double t0 = now(), start = t0 + warmup, end = start + measured, cpu0 = 0;
    int measuring = 0;
    struct epoll_event evs[256];
    unsigned char out[64 * (6 + 125)];
    for (;;) {
        double t = now();
        if (!measuring && t >= start) {
            measuring = 1;
            at_start = count;
            cpu0 = cpu();
            start = t;
        }
        if (t >= end) break;
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->have, BUF - c->have);
            if (r <= 0) {
                fprintf(stderr, "epoll_echo: connection closed by the server\n");
                return 1;
            }
            c->have += r;
            size_t pos = 0, replies = 0;
            for (;;) {
                if (c->have - pos < 2) break;
                unsigned char *h = c->buf + pos;
                size_t len = h[1] & 0x7f, hl = 2;
                if (len == 126) {
                    if (c->have - pos < 4) break;
                    len = (h[2] << 8) | h[3];
                    hl = 4;
                } else if (len == 127) {
                    fprintf(stderr, "epoll_echo: unexpected 64-bit frame length\n");
                    return 1;
                }
                if (c->have - pos < hl + len) break;
                unsigned op = h[0] & 0x0f;
                if (op == 1 || op == 2) replies++;
                pos += hl + len;
            }
            memmove(c->buf, c->buf + pos, c->have - pos);
            c->have -= pos;
            count += replies;
            /* Answer every frame with a new one, in one write. */
            while (replies > 0) {
                size_t k = replies > 64 ? 64 : replies;
                for (size_t i = 0; i < k; i++) memcpy(out + i * flen, frame, flen);
                if (write(c->fd, out, k * flen) != (ssize_t)(k * flen)) die("write");
                replies -= k;
            }
        }
    }
    double dt = now() - start;
    double used = cpu() - cpu0;
    printf("epoll_echo %s:%d%s conns=%d size=%d inflight=%d: %.0f msgs/s, client cpu %.0f%%\n", host, port,
           path, conns, size, inflight, (count - at_start) / dt, 100 * used / dt);
    return 0;
}
