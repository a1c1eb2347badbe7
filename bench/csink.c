/*
 * Benchmark subscriber sockets in C (a measuring instrument, not part of Framecast): Node's
 * receive path tops out near 200k datagrams/s on one core, below what a relay can deliver,
 * so the harness reads with recvmmsg here. It speaks just enough of PROTOCOL.md: HELLO with
 * the token echoed (§4.9), SUBSCRIBE (§4.2), HEARTBEAT (§4.7), and counts MEDIA, taking the
 * send time (a little-endian double of CLOCK_MONOTONIC ms) from payload offset 0 (byte 40).
 *
 * usage: csink BROKER_PORT MODE(broker|baseline) ID [ID...]   one socket per ID
 * stdin: "reset 0|1" (zero counts; 1 = record latency), "report", "quit"
 * stdout: "ready", "reset", "report RECEIVED LATE SAMPLES us:count us:count ..."
 * LATE: datagrams that took 100 ms or more, too late for a live stream: the harness counts
 * them as lost, so a relay that falls behind and catches up later does not pass for keeping up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 100000
#define BATCH 64
static uint32_t hist[BUCKETS];
static uint64_t received, late, samples;
static int measure;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* process.hrtime() reads the same clock */
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void put32(uint8_t *b, uint32_t v) { b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = v; }

static void header(uint8_t *b, uint8_t type, uint32_t producer, uint32_t request) {
  b[0] = 0x46; b[1] = 0x43; b[2] = 1; b[3] = type; put32(b + 4, producer); put32(b + 8, request);
}

/* Sends msg until a reply for which accept() says yes arrives (every 200 ms). */
static int exchange(int fd, struct sockaddr_in *to, uint8_t *msg, size_t len, uint8_t *reply, int (*accept)(uint8_t *, ssize_t)) {
  for (int tries = 0; tries < 100; tries++) {
    sendto(fd, msg, len, 0, (struct sockaddr *)to, sizeof *to);
    struct pollfd p = { fd, POLLIN, 0 };
    double until = now_ms() + 200;
    while (now_ms() < until) {
      if (poll(&p, 1, 20) <= 0) continue;
      ssize_t n = recv(fd, reply, 65536, 0);
      if (n > 0 && accept(reply, n)) return (int)n;
    }
  }
  return -1;
}

static int is_ack_ok(uint8_t *r, ssize_t n) { return n >= 14 && r[3] == 0x13 && r[12] == 0; }
static int is_validate(uint8_t *r, ssize_t n) { return n >= 14 && r[3] == 0x13 && r[12] == 7; }
static int is_registered(uint8_t *r, ssize_t n) { return n == 1 && r[0] == 0xfe; }

static void join(int fd, struct sockaddr_in *to, int broker, uint32_t id) {
  static uint8_t reply[65536];
  uint8_t msg[64];
  if (!broker) {
    msg[0] = 0xff; put32(msg + 1, id);
    if (exchange(fd, to, msg, 5, reply, is_registered) < 0) { fprintf(stderr, "csink: baseline did not answer\n"); exit(1); }
    return;
  }
  memset(msg, 0, sizeof msg);
  header(msg, 0x1b, 0, 1);
  int n = exchange(fd, to, msg, 64, reply, is_validate);
  uint8_t *token = NULL;
  for (int i = 14; n > 0 && i + 22 <= n; i++) if (reply[i] == 0xc4 && reply[i + 1] == 20) { token = reply + i + 2; break; }
  if (token == NULL) { fprintf(stderr, "csink: no token\n"); exit(1); }
  header(msg, 0x1b, 0, 2);
  msg[12] = 20; memcpy(msg + 13, token, 20);
  if (exchange(fd, to, msg, 64, reply, is_ack_ok) < 0) { fprintf(stderr, "csink: HELLO refused\n"); exit(1); }
  header(msg, 0x11, id, 3);
  if (exchange(fd, to, msg, 12, reply, is_ack_ok) < 0) { fprintf(stderr, "csink: SUBSCRIBE refused\n"); exit(1); }
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: csink PORT broker|baseline ID...\n"); return 2; }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  int broker = strcmp(argv[2], "broker") == 0, n = argc - 3;
  int *fds = calloc(n, sizeof *fds), ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int rcv = 1 << 20;
    setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in any = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &any.sin_addr);
    bind(fds[i], (struct sockaddr *)&any, sizeof any);
    join(fds[i], &to, broker, (uint32_t)strtoul(argv[3 + i], NULL, 0));
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  struct epoll_event in = { .events = EPOLLIN, .data.u32 = n };
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
  printf("ready\n");
  fflush(stdout);

  static uint8_t bufs[BATCH][9000];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i];
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint8_t hb[14];
  header(hb, 0x17, 0, 0); hb[12] = 2; hb[13] = 0;
  double next_hb = now_ms() + 1000;
  struct epoll_event evs[64];
  char line[256];
  for (;;) {
    int k = epoll_wait(ep, evs, 64, 100);
    for (int e = 0; e < k; e++) {
      uint32_t i = evs[e].data.u32;
      if (i == (uint32_t)n) {
        if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, "quit", 4) == 0) return 0;
        if (strncmp(line, "reset", 5) == 0) {
          received = late = samples = 0; memset(hist, 0, sizeof hist); measure = line[6] == '1';
          printf("reset\n");
        } else if (strncmp(line, "report", 6) == 0) {
          printf("report %llu %llu %llu", (unsigned long long)received, (unsigned long long)late, (unsigned long long)samples);
          for (int b = 0; b < BUCKETS; b++) if (hist[b]) printf(" %d:%u", b, hist[b]);
          printf("\n");
        }
        fflush(stdout);
        continue;
      }
      for (;;) {
        int got = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        double t = now_ms();
        for (int m = 0; m < got; m++) {
          uint8_t *b = bufs[m];
          if (msgs[m].msg_len < 48 || b[3] != 0x01) continue;
          received++;
          double sent; memcpy(&sent, b + 40, 8);
          long us = (long)((t - sent) * 1000 + 0.5);
          if (us >= BUCKETS) late++;
          if (measure) {
            hist[us < 0 ? 0 : us >= BUCKETS ? BUCKETS - 1 : us]++;
            samples++;
          }
        }
        if (got < BATCH) break;
      }
    }
    if (broker && now_ms() >= next_hb) {
      for (int i = 0; i < n; i++) sendto(fds[i], hb, sizeof hb, 0, (struct sockaddr *)&to, sizeof to);
      next_hb += 1000;
    }
  }
}
