/* The ceiling of a client that lands a large object's bytes in memory it just allocated: plain
 * blocking recv() straight into the object's buffer, no copy on the way, no checksum, no
 * Python. What any dataset that hands over a new buffer per object can reach on this machine.
 *
 * Objects are read one after another, in order; each gets a new buffer (malloc, which for
 * these sizes is a fresh mmap, as for a Python `bytes` of that size), its ranges are fetched
 * over CONNS keep-alive connections at once, then the buffer is freed, as a training loop drops
 * the object it has used. With `reuse`, one buffer serves every object: the same socket reads
 * into memory that is already mapped, which is what wrk measures. With `hold`, each buffer is
 * freed only once the next object is in: a reader that fetches the next object while the
 * previous one is still in use (as a prefetching dataset does) never writes into pages the
 * previous object just gave back, and pays fresh memory for every object.
 *
 *   cc -O2 -pthread -o fresh_recv benches/fresh_recv.c
 *   ./fresh_recv HOST PORT PATHS_FILE CONNS PART_BYTES [reuse|huge|hold]
 *
 * PATHS_FILE holds one URL path per line, as the harness writes them for wrk. Prints one JSON
 * line: objects, bytes, seconds, MB/s, CPU seconds. The server must answer Range requests with
 * 206 and a Content-Range giving the object's size (nginx does).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host;
static int port;

struct job {
  const char *path;
  char *buf;
  long size, part;
  atomic_long next; /* next part index to take */
};

static struct job current;
static pthread_barrier_t start_line, finish_line;
static int stop;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int connect_to_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Sends a ranged GET and reads its answer: headers into a small buffer, the body straight
 * into dst (any body bytes that came with the headers are moved there). Returns the object's
 * size from Content-Range. */
static long fetch(int fd, const char *path, long start, long len, char *dst) {
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nRange: bytes=%ld-%ld\r\n\r\n", path, host,
                   start, start + len - 1);
  if (send(fd, req, n, 0) != n) die("send");
  char head[4096];
  long got = 0;
  char *end = NULL;
  while (!end) {
    ssize_t r = recv(fd, head + got, sizeof head - 1 - got, 0);
    if (r <= 0) die("recv headers");
    got += r;
    head[got] = 0;
    end = strstr(head, "\r\n\r\n");
  }
  long total = -1, a, b;
  char *range = strcasestr(head, "Content-Range: bytes ");
  if (!range || sscanf(range + 21, "%ld-%ld/%ld", &a, &b, &total) != 3) {
    fprintf(stderr, "no Content-Range for %s: %.200s\n", path, head);
    exit(1);
  }
  long have = got - (end + 4 - head);
  if (have > len) have = len;
  memcpy(dst, end + 4, have);
  while (have < len) {
    ssize_t r = recv(fd, dst + have, len - have, 0);
    if (r <= 0) die("recv body");
    have += r;
  }
  return total;
}

static void *worker(void *arg) {
  (void)arg;
  int fd = connect_to_server();
  for (;;) {
    pthread_barrier_wait(&start_line);
    if (stop) break;
    for (;;) {
      long i = atomic_fetch_add(&current.next, 1);
      long start = i * current.part;
      if (start >= current.size) break;
      long len = current.size - start < current.part ? current.size - start : current.part;
      fetch(fd, current.path, start, len, current.buf + start);
    }
    pthread_barrier_wait(&finish_line);
  }
  close(fd);
  return NULL;
}

/* A new mapping of at least `size` bytes on transparent huge pages (a hint). */
static char *huge_buffer(long size, long *mapped) {
  *mapped = (size + (2L << 20) - 1) / (2L << 20) * (2L << 20);
  char *p = mmap(NULL, *mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  madvise(p, *mapped, MADV_HUGEPAGE);
  return p;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s HOST PORT PATHS_FILE CONNS PART_BYTES [reuse|huge|hold]\n", argv[0]);
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  int conns = atoi(argv[4]);
  long part = atol(argv[5]);
  int reuse = argc > 6 && strcmp(argv[6], "reuse") == 0;
  int huge = argc > 6 && strcmp(argv[6], "huge") == 0;
  int hold = argc > 6 && strcmp(argv[6], "hold") == 0;
  FILE *f = fopen(argv[3], "r");
  if (!f) die(argv[3]);
  char *paths[4096];
  int count = 0;
  char line[2048];
  while (count < 4096 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (*line) paths[count++] = strdup(line);
  }
  fclose(f);

  /* Each object's size, from a one-byte range. */
  long sizes[4096], largest = 0;
  int probe = connect_to_server();
  char byte;
  for (int i = 0; i < count; i++) {
    sizes[i] = fetch(probe, paths[i], 0, 1, &byte);
    if (sizes[i] > largest) largest = sizes[i];
  }
  close(probe);

  pthread_barrier_init(&start_line, NULL, conns + 1);
  pthread_barrier_init(&finish_line, NULL, conns + 1);
  pthread_t threads[256];
  if (conns < 1 || conns > 256) return 2;
  for (int i = 0; i < conns; i++) pthread_create(&threads[i], NULL, worker, NULL);

  char *reused = NULL, *held = NULL;
  if (reuse) {
    reused = malloc(largest);
    memset(reused, 1, largest); /* mapped and touched before the clock starts */
  }
  double cpu0 = cpu(), t0 = now();
  long bytes = 0;
  for (int i = 0; i < count; i++) {
    current.path = paths[i];
    current.size = sizes[i];
    current.part = part;
    long mapped = 0;
    current.buf = reuse ? reused : huge ? huge_buffer(sizes[i], &mapped) : malloc(sizes[i]);
    if (!current.buf) die("malloc");
    atomic_store(&current.next, 0);
    pthread_barrier_wait(&start_line);
    pthread_barrier_wait(&finish_line);
    bytes += sizes[i];
    if (huge)
      munmap(current.buf, mapped);
    else if (hold) {
      free(held);
      held = current.buf;
    } else if (!reuse)
      free(current.buf);
  }
  free(held);
  double seconds = now() - t0, used = cpu() - cpu0;
  stop = 1;
  pthread_barrier_wait(&start_line);
  for (int i = 0; i < conns; i++) pthread_join(threads[i], NULL);
  printf("{\"objects\": %d, \"bytes\": %ld, \"seconds\": %.4f, \"mb_s\": %.1f, "
         "\"cpu_s\": %.3f, \"memory\": \"%s\", \"conns\": %d, \"part\": %ld}\n",
         count, bytes, seconds, bytes / seconds / 1e6, used,
         reuse ? "reused" : huge ? "fresh, huge pages" : hold ? "fresh, previous held" : "fresh", conns,
         part);
  return 0;
}
